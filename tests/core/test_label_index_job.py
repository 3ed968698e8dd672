"""The real label-index job: the bundled model embeds a small taxonomy and serves it."""

from __future__ import annotations

import pytest

from core.accounts.projects import create_project
from core.config import Settings
from core.data.concepts import read_taxonomy
from core.data.imports import import_taxonomy
from core.jobs import enqueue, get_job
from core.model.loading import load_ranker
from core.model.versions import active_version
from core.worker import WorkerProcess
from tests.fakes import TAXONOMY_CSV, write


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import os

    from storage.db import Database

    folder = tmp_path_factory.mktemp("var")
    os.environ["XMTC_DATA_DIR"] = str(folder)
    try:
        db = Database(f"sqlite:///{folder / 'xmtc.db'}")
        db.create_all()
        pid = create_project(db, "p")
        import_taxonomy(db, pid, read_taxonomy(write(folder / "t.csv", TAXONOMY_CSV)), "v1")
        job_id = enqueue(db, "build_label_index", pid)
        worker = WorkerProcess(db, Settings.from_env())
        worker.register()
        worker.run_one()
        yield db, pid, job_id
    finally:
        os.environ.pop("XMTC_DATA_DIR", None)


def test_the_job_finishes_and_activates_a_zero_shot_version(served):
    db, pid, job_id = served
    job = get_job(db, job_id)
    assert job.status == "done", job.error
    assert job.result["labels"] == 5
    version = active_version(db, pid)
    assert version is not None and version.kind == "zero_shot"


def test_the_served_index_ranks_the_obvious_label_first(served):
    db, pid, _ = served
    ranker = load_ranker(active_version(db, pid).path, device="cpu")
    preds = ranker.rank(["Acute myocardial infarction: outcomes after a heart attack"], k=3)[0]
    assert ranker.table.external_ids[ranker.table.row(preds[0].label_id)] == "mi"
    assert preds[0].score > preds[1].score


def test_ranking_an_empty_document_says_so(served):
    from core.errors import ModelError

    db, pid, _ = served
    with pytest.raises(ModelError, match="empty"):
        load_ranker(active_version(db, pid).path, device="cpu").rank(["   "])
