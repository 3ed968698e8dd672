"""Taxonomy: the active version, search over names, and a label's paths, children and documents."""

from __future__ import annotations

import streamlit as st

from core.catalog import label_detail, search_labels
from core.projects import overview
from ui.common import page_setup
from ui.widgets import paths_view

db, user, project_id = page_setup("Taxonomy")

info = overview(db, project_id)
c = st.columns(3)
c[0].metric("Version", info.taxonomy_version or "none")
c[1].metric("Labels", f"{info.labels:,}")
c[2].metric("Deprecated", f"{info.labels_deprecated:,}")
if not info.labels:
    st.info("This project has no taxonomy yet: an admin imports one (or builds the demo project).")
    st.stop()

query = st.text_input("Search labels (name, alternative name or id)", key="taxonomy_search")
hits = search_labels(db, project_id, query) if query else []
if query and not hits:
    st.caption(f"No label matches {query!r}.")
if hits:
    chosen = st.selectbox(f"{len(hits)} match(es)", [h[0] for h in hits],
                          format_func=lambda i: next(f"{h[2]}  [{h[1]}]" for h in hits if h[0] == i),
                          key="taxonomy_pick")
    detail = label_detail(db, project_id, chosen)
    if detail:
        st.subheader(detail.pref_label)
        st.caption(f"id {detail.external_id}" + (" · deprecated" if detail.deprecated else "")
                   + (f" · replaced by {detail.replaced_by}" if detail.replaced_by else ""))
        if detail.alt_labels:
            st.text("Also: " + "; ".join(detail.alt_labels))
        if detail.description:
            st.text(detail.description)
        st.markdown(f"**Paths ({len(detail.paths)})**")
        paths_view(detail.paths)
        st.markdown(f"**Children ({len(detail.children)})**")
        st.text("; ".join(detail.children) or "none")
        st.metric("Documents carrying it", detail.documents)
