"""Small shared widgets: a document rendered as text, label paths."""

from __future__ import annotations

import streamlit as st


def document_view(title: str, abstract: str, keywords: list[str] | None = None) -> None:
    """Show a document as plain text: never rendered as HTML or Markdown."""
    st.text(title or "(no title)")
    with st.container(height=260):
        st.text(abstract or "(no abstract)")
    if keywords:
        st.text("Keywords: " + "; ".join(keywords))


def paths_view(paths: list[list[str]]) -> None:
    """Each root-to-label path of a label, as text."""
    for path in paths:
        st.text(" > ".join(path))
