"""The app's entry point (``streamlit run app.py``): its pages in the sidebar, the Overview first."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="XMTC - keep a classifier current", layout="wide")
st.navigation([
    st.Page("overview.py", title="Overview", default=True),
    st.Page("pages/1_Annotate.py", title="Annotate", url_path="Annotate"),
    st.Page("pages/2_Model.py", title="Model", url_path="Model"),
    st.Page("pages/3_Evaluate.py", title="Evaluate", url_path="Evaluate"),
    st.Page("pages/4_Taxonomy.py", title="Taxonomy", url_path="Taxonomy"),
]).run()
