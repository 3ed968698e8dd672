from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.demo import build_demo
from core.errors import XmtcError
from core.jobs import get_job
from storage.models import Document, DocumentLabel, Label, LabelParent, Project


def test_demo_project_holds_the_pubmed_mesh_corpus_with_its_canonical_split(db, shared_data):
    result = build_demo(db, shared_data)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Document)) == 2600
        splits = dict(s.execute(select(Document.split, func.count()).group_by(Document.split)).all())
        assert splits == {"train": 1600, "test": 1000}
        assert s.scalar(select(func.count(func.distinct(DocumentLabel.label_id)))) == 8132
        assert s.scalar(select(func.count()).select_from(Label)) == 8132
        assert s.scalar(select(func.count()).select_from(LabelParent)) > 8000
        mean = s.scalar(select(func.count()).select_from(DocumentLabel)) / 2600
        assert 12.6 < mean < 12.8
    assert result.corpus.skipped_count == 0
    assert get_job(db, result.job_id).kind == "build_label_index"


def test_demo_without_data_says_where_the_files_come_from(db, tmp_path):
    with pytest.raises(XmtcError, match=r"XMTC_DEMO_DATA.*pubmed_mesh\.csv\.gz"):
        build_demo(db, tmp_path)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Project)) == 0
