"""Security on the pages: hostile document and label text shows as text, uploads are checked, roles hide actions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select, update

from core.config import ROOT
from storage.models import Document, Job, Label
from tests.pages.conftest import signed_in, texts

HOSTILE_TITLE = "<script>alert('t')</script> **bold** :red[x]"
HOSTILE_ABSTRACT = "<img src=x onerror=alert(1)> [click](javascript:alert(1))"
HOSTILE_LABEL = "[Oncology](javascript:alert(2)) <b>big</b>"
UNESCAPED = re.compile(r"(?<!\\)(<script|<img|<b>|\]\(javascript|\*\*bold|:red\[)")


def markdown_strings(at) -> list[str]:
    """Every string the page hands to an element that renders Markdown."""
    out = []
    for kind in ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        out.extend(str(e.value) for e in getattr(at, kind))
    out.extend(b.label for b in at.button)
    out.extend(e.label for e in at.expander)
    out.extend(m.label for m in at.metric)
    return out


@pytest.fixture
def hostile(campaign):
    db = campaign["db"]
    with db.session() as s:
        s.execute(update(Document).where(Document.id == campaign["docs"][0]).values(title=HOSTILE_TITLE,
                                                                                    abstract=HOSTILE_ABSTRACT))
        s.execute(update(Label).where(Label.id == campaign["label"]).values(
            pref_label=HOSTILE_LABEL, alt_labels=["<iframe src=x>"], description="_under_ <b>bold</b>"))
    return campaign


def test_hostile_document_and_label_text_is_shown_as_text_on_the_annotate_page(hostile):
    at = signed_in("pages/1_Annotate.py", hostile["annotator"])
    assert not at.exception
    plain_text = [t.value for t in at.text]
    assert HOSTILE_TITLE in plain_text and HOSTILE_ABSTRACT in plain_text  # st.text: shown exactly as stored
    assert f"Label: {HOSTILE_LABEL}" in plain_text
    assert "Also called: <iframe src=x>" in texts(at)  # what the reader sees, escaped underneath
    leaks = [m for m in markdown_strings(at) if UNESCAPED.search(m) or re.search(r"(?<!\\)<iframe", m)]
    assert leaks == []


def test_hostile_label_text_is_shown_as_text_on_the_taxonomy_page(hostile):
    at = signed_in("pages/4_Taxonomy.py", hostile["admin"])
    at.text_input(key="taxonomy_search").set_value("oncology").run()
    assert not at.exception
    assert HOSTILE_LABEL in texts(at)
    assert [m for m in markdown_strings(at) if UNESCAPED.search(m)] == []


def test_no_page_allows_raw_html():
    sources = [*Path(ROOT, "pages").glob("*.py"), Path(ROOT, "app.py"), Path(ROOT, "overview.py"), *Path(ROOT, "ui").glob("*.py")]
    assert [p.name for p in sources if "unsafe_allow_html" in p.read_text()] == []


def test_an_upload_of_the_wrong_type_or_too_large_is_refused_before_any_job(seeded, monkeypatch):
    import ui.common

    at = signed_in("pages/4_Taxonomy.py", seeded["admin"])
    # Streamlit refuses a plain .exe itself; a gzipped one passes its filter and is refused here.
    at.file_uploader(key="tax_update_file").upload("payload.exe.gz", b"\x1f\x8b\x08\x00", "application/gzip")
    next(t for t in at.text_input if t.key == "tax_update_name").set_value("v2")
    next(b for b in at.button if b.label == "Compare with the current taxonomy").click().run()
    assert "payload.exe.gz is not a taxonomy file" in texts(at)
    at.file_uploader(key="tax_update_file").upload("empty.csv", b"", "text/csv")
    next(b for b in at.button if b.label == "Compare with the current taxonomy").click().run()
    assert "empty.csv is empty" in texts(at)
    monkeypatch.setattr(ui.common, "UPLOAD_LIMIT_MB", 0.0001)
    at.file_uploader(key="tax_update_file").upload("big.csv", b"id,label\n" + b"x" * 500, "text/csv")
    next(b for b in at.button if b.label == "Compare with the current taxonomy").click().run()
    assert "big.csv is larger than" in texts(at)
    with seeded["db"].session() as s:
        assert s.scalars(select(Job)).all() == []


ADMIN_ONLY = {"overview.py": ["Build the demo project", "Create project", "Create user"],
              "pages/1_Annotate.py": ["Start the campaign", "Pause", "Stop: we are satisfied"],
              "pages/2_Model.py": ["Start training", "Activate (or roll back to) this version",
                                   "Embed labels and build the label index", "Adapt an encoder (GPL)", "Build the pools"],
              "pages/3_Evaluate.py": ["Judge with the LLM"],
              "pages/4_Taxonomy.py": ["Compare with the current taxonomy", "Add the label", "Retire the label"]}


def test_an_annotator_is_offered_no_admin_action_and_no_other_project(campaign):
    from core.accounts.projects import create_project

    create_project(campaign["db"], "Someone else's project")
    for page, actions in ADMIN_ONLY.items():
        at = signed_in(page, campaign["annotator"])
        assert not at.exception, page
        offered = {b.label for b in at.button}
        assert offered.isdisjoint(actions), (page, offered & set(actions))
        assert at.selectbox(key="project_picker").options == ["Cardio"], page  # not the other project
    admin = signed_in("pages/2_Model.py", campaign["admin"])
    assert {"Start training", "Activate (or roll back to) this version"} <= {b.label for b in admin.button}


HOSTILE_SPLIT = "![pixel](http://evil.example/p.png) [win](http://evil.example)"


def test_imported_split_names_show_as_text_on_the_overview_and_the_annotate_page(seeded):
    db = seeded["db"]
    with db.session() as s:
        s.execute(update(Document).where(Document.split == "train").values(split=HOSTILE_SPLIT))
    unescaped = re.compile(r"(?<!\\)!(?<!\\)\[|(?<!\\)\]\(http")
    overview = signed_in("overview.py", seeded["admin"])
    assert not overview.exception
    annotate = signed_in("pages/1_Annotate.py", seeded["annotator"])
    annotate.radio(key="annotate_view").set_value("Browse documents").run()
    assert not annotate.exception
    for at in (overview, annotate):
        assert HOSTILE_SPLIT in texts(at)  # shown as typed
        assert [m for m in markdown_strings(at) if unescaped.search(m)] == []
