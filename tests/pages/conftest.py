"""AppTest helpers: a project seeded with a small taxonomy and corpus, users of both roles."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update
from streamlit.testing.v1 import AppTest

from core.accounts import auth
from core.accounts.projects import add_member, create_project
from core.config import ROOT
from core.data.concepts import read_taxonomy
from core.data.corpus import ColumnMapping, read_csv
from core.data.imports import import_corpus, import_taxonomy
from core.data.reports import ImportReport
from core.newlabels.campaigns import CampaignConfig, add_questions, create_campaign
from core.newlabels.jobs import store_pools
from storage.models import Document, Job, Label
from tests.fakes import CORPUS_CSV, TAXONOMY_CSV, empty_version, write

PAGES = ["pages/1_Annotate.py", "pages/2_Model.py", "pages/3_Evaluate.py", "pages/4_Taxonomy.py"]


def app(path: str = "overview.py") -> AppTest:
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
    """The page as ``user_id`` sees it, signed in with a real server-side session."""
    from bench.common import signed_in_page

    return signed_in_page(path, user_id).run()


def shown(markdown: str) -> str:
    """What a Markdown string shows: backslash-escaped punctuation (see ui.widgets.plain) as the character itself."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def texts(at: AppTest) -> str:
    """Everything the page shows as text, for content assertions."""
    parts = [str(e.value) for e in at.text]
    for kind in ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        parts.extend(shown(str(e.value)) for e in getattr(at, kind))
    parts.extend(f"{shown(m.label)} {m.value}" for m in at.metric)
    return "\n".join(parts)


@pytest.fixture
def campaign(seeded, data_dir):
    db, pid = seeded["db"], seeded["project"]
    version = empty_version(db, pid, data_dir / "models", activate=True)
    with db.session() as s:
        onc = s.scalar(select(Label.id).where(Label.external_id == "onc"))
        docs = list(s.scalars(select(Document.id).order_by(Document.id)))
    store_pools(db, pid, {onc: [(d, 0.5) for d in docs]}, None)
    cid = create_campaign(db, pid, "Oncology", [onc], seeded["admin"], CampaignConfig(train_after_positives=2))
    with db.session() as s:
        s.execute(update(Job).values(status="done"))  # its first iteration has run
    add_questions(db, cid, [(d, onc) for d in docs], version, 1)
    return {**seeded, "campaign": cid, "docs": docs, "label": onc, "version": version}
