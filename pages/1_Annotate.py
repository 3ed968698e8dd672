"""Annotate: the documents SMEs answer questions about, with their current labels."""

from __future__ import annotations

import streamlit as st

from core.annotate_views import document_with_labels, split_counts
from ui.common import page_setup
from ui.widgets import document_view

db, user, project_id = page_setup("Annotate")

counts = split_counts(db, project_id)
cols = st.columns(max(1, len(counts)))
for col, (split, n) in zip(cols, sorted(counts.items()), strict=False):
    col.metric(f"{split} documents", f"{n:,}")
if not counts:
    st.info("This project has no documents yet: an admin imports a corpus or builds the demo project.")
    st.stop()

st.subheader("Browse documents")
split = st.selectbox("Split", sorted(counts), key="annotate_split")
position = st.number_input(f"Document (1-{counts[split]:,})", min_value=1, max_value=counts[split], value=1,
                           key="annotate_position")
doc = document_with_labels(db, project_id, split, int(position) - 1)
if doc is not None:
    st.caption(f"Document id {doc.external_id}")
    document_view(doc.title, doc.abstract, doc.keywords)
    st.markdown(f"**Gold labels ({len(doc.labels)})**")
    st.dataframe({"label": [name for name, _ in doc.labels], "source": [src for _, src in doc.labels]},
                 hide_index=True, width="stretch")
