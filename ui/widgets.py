"""Small shared widgets: a document rendered as text, label paths, a label picker, Markdown-safe text."""

from __future__ import annotations

import re
from collections.abc import Collection

import streamlit as st

from core.data.catalog import servable_labels
from storage.db import Database

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: object) -> str:
    """User text (a label, a document, a file name, an LLM's words) for an element that renders Markdown: every
    Markdown character is escaped, so it shows exactly as written, never as a link, HTML or emphasis."""
    return _MARKDOWN.sub(r"\\\1", str(text))


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


def label_picker(db: Database, project_id: int, title: str, among: Collection[int] | None = None) -> list[int]:
    """Choose labels of the project's taxonomy by name (type to filter); ``among``: only these may be chosen."""
    names = {lab.id: f"{lab.pref_label} ({lab.external_id})" for lab in servable_labels(db, project_id)
             if among is None or lab.id in among}
    return st.multiselect(title, list(names), format_func=names.get, placeholder="Type a label name")
