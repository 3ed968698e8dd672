"""AppTest helpers: a project seeded with a small taxonomy and corpus, users of both roles."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core import auth
from core.config import ROOT
from core.corpus import ColumnMapping, read_csv
from core.imports import import_corpus, import_taxonomy
from core.projects import add_member, create_project
from core.reports import ImportReport
from core.taxonomy import read_taxonomy
from tests.fakes import CORPUS_CSV, TAXONOMY_CSV, write

PAGES = ["pages/1_Annotate.py", "pages/2_Model.py", "pages/3_Evaluate.py", "pages/4_Taxonomy.py"]


def app(path: str = "app.py") -> AppTest:
    return AppTest.from_file(str(ROOT / path), default_timeout=60)


@pytest.fixture
def seeded(db, tmp_path):
    admin = auth.create_user(db, "ada", "long enough", "admin")
    annotator = auth.create_user(db, "sam", "long enough", "annotator")
    pid = create_project(db, "Cardio", user_id=admin.id)
    import_taxonomy(db, pid, read_taxonomy(write(tmp_path / "t.csv", TAXONOMY_CSV)), "v1")
    report = ImportReport()
    mapping = ColumnMapping(id="doc_id", labels="tags", split="split")
    import_corpus(db, pid, read_csv(write(tmp_path / "c.csv", CORPUS_CSV), mapping, report), report)
    add_member(db, pid, "sam")
    return {"db": db, "project": pid, "admin": admin.id, "annotator": annotator.id}


def signed_in(path: str, user_id: int) -> AppTest:
    at = app(path)
    at.session_state["user_id"] = user_id
    return at.run()


def texts(at: AppTest) -> str:
    """Everything the page shows as text, for content assertions."""
    parts = []
    for kind in ("title", "subheader", "markdown", "caption", "text", "info", "warning", "error", "success"):
        parts.extend(str(e.value) for e in getattr(at, kind))
    parts.extend(f"{m.label} {m.value}" for m in at.metric)
    return "\n".join(parts)
