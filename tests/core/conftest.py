"""Fixtures shared by the core tests: a small project with an active model version, pools and SMEs."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.accounts.auth import create_user
from core.accounts.projects import create_project
from core.data.concepts import read_taxonomy
from core.data.corpus import ColumnMapping, read_csv
from core.data.imports import import_corpus, import_taxonomy
from core.data.reports import ImportReport
from core.model.versions import register_version, write_bundle
from core.newlabels.jobs import store_pools
from storage.models import Document, Label
from tests.fakes import CORPUS_CSV, TAXONOMY_CSV, write


@pytest.fixture
def world(db, tmp_path, data_dir):
    pid = create_project(db, "p")
    import_taxonomy(db, pid, read_taxonomy(write(tmp_path / "t.csv", TAXONOMY_CSV)), "v1")
    report = ImportReport()
    import_corpus(db, pid, read_csv(write(tmp_path / "c.csv", CORPUS_CSV),
                                    ColumnMapping(id="doc_id", labels="tags", split="split"), report), report)
    bundle = write_bundle(data_dir / "models", pid, "bicross", lambda folder: {})
    version = register_version(db, pid, "bicross", bundle, {}, {}, None, activate=True)
    with db.session() as s:
        labels = {lab.external_id: lab.id for lab in s.scalars(select(Label))}
        docs = list(s.scalars(select(Document.id).order_by(Document.id)))
    store_pools(db, pid, {labels["onc"]: [(d, 0.5) for d in docs], labels["card"]: [(d, 0.5) for d in docs]}, None)
    users = [create_user(db, f"sme{i}", "long enough", "annotator").id for i in range(3)]
    admin = create_user(db, "lead", "long enough", "admin").id
    return {"db": db, "pid": pid, "labels": labels, "docs": docs, "users": users, "version": version, "admin": admin}
