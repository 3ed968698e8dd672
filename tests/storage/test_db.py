from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from storage.models import Document, DocumentLabel, Label, Project

BACKENDS = ("sqlite", "postgresql")  # every test using db runs on both (tests/conftest.py)


def test_sqlite_connection_uses_wal_foreign_keys_and_busy_timeout(db, backend):
    if backend != "sqlite":
        pytest.skip("SQLite's pragmas")
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_deleting_a_project_cascades_to_its_documents_labels_and_assignments(db):
    with db.session() as s:
        p = Project(name="p")
        s.add(p)
        s.flush()
        d = Document(project_id=p.id, external_id="1", title="t")
        lab = Label(project_id=p.id, external_id="L", pref_label="L")
        s.add_all([d, lab])
        s.flush()
        s.add(DocumentLabel(document_id=d.id, label_id=lab.id, source="test"))
    with db.session() as s:
        s.delete(s.get(Project, p.id))
    with db.session() as s:
        assert s.scalar(text("SELECT count(*) FROM documents")) == 0
        assert s.scalar(text("SELECT count(*) FROM labels")) == 0
        assert s.scalar(text("SELECT count(*) FROM document_labels")) == 0


def test_document_external_ids_are_unique_per_project(db):
    with db.session() as s:
        a, b = Project(name="a"), Project(name="b")
        s.add_all([a, b])
        s.flush()
        s.add_all([Document(project_id=a.id, external_id="1"), Document(project_id=b.id, external_id="1")])
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Document(project_id=a.id, external_id="1"))


def test_a_foreign_key_to_a_missing_row_is_refused(db):
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Document(project_id=999, external_id="x"))
