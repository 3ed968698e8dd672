"""The training job end to end: a worker trains BiCross and the baseline on a tiny project."""

from __future__ import annotations

import pytest

from core.accounts.projects import create_project
from core.config import Settings
from core.data.concepts import read_taxonomy
from core.data.corpus import ColumnMapping, read_csv
from core.data.imports import import_corpus, import_taxonomy
from core.data.reports import ImportReport
from core.jobs import enqueue, get_job
from core.model.training import TrainConfig
from core.model.versions import active_version, list_versions
from core.worker import WorkerProcess
from storage.models import Document
from tests.fakes import TAXONOMY_CSV, write

CORPUS = """doc_id,title,abstract,tags,split
1,Heart attack outcomes,Acute myocardial infarction patients followed for a year.,Myocardial Infarction|Cardiology,train
2,Tumour growth,Breast tumours grew slowly in the cohort.,Breast Neoplasms|Oncology,train
3,Cardio-oncology,Heart damage after breast cancer therapy.,Cardiology|Breast Neoplasms,train
4,Coronary care,Infarct size after thrombolysis.,Myocardial Infarction,train
5,Radiotherapy,Radiation for breast cancer.,Breast Neoplasms|Oncology,train
6,Heart failure clinic,Cardiology outpatients.,Cardiology,test
"""


def trained(db, tmp_path, cfg: TrainConfig, corpus: str = CORPUS, before=None) -> tuple[int, object]:
    """A project with the fake taxonomy and ``corpus`` (``before(pid)`` runs after the import), a training job for
    ``cfg`` run by a worker: the project id and the finished job."""
    pid = create_project(db, "p")
    import_taxonomy(db, pid, read_taxonomy(write(tmp_path / "t.csv", TAXONOMY_CSV)), "v1")
    report = ImportReport()
    import_corpus(db, pid, read_csv(write(tmp_path / "c.csv", corpus),
                                    ColumnMapping(id="doc_id", labels="tags", split="split"), report), report)
    if before is not None:
        before(pid)
    job_id = enqueue(db, "train_model", pid, {"config": cfg.as_dict()})
    worker = WorkerProcess(db, Settings.from_env())
    worker.register()
    worker.run_one()
    return pid, get_job(db, job_id)


@pytest.mark.slow  # trains a real model for several seconds
def test_the_training_job_creates_versions_with_metrics_and_activates_bicross(db, tmp_path):
    cfg = TrainConfig(batch_size=3, max_seq_length=48, cross_max_length=48, cross_positives_per_doc=1,
                      train_baseline=True, baseline_epochs=1)
    pid, job = trained(db, tmp_path, cfg)
    assert job.status == "done", job.error
    kinds = {v.kind: v for v in list_versions(db, pid)}
    assert set(kinds) == {"bicross", "baseline"}
    assert active_version(db, pid).kind == "bicross"
    assert set(kinds["bicross"].metrics) >= {"P@1", "P@5", "R@10", "nDCG@10", "R@30"}
    assert kinds["bicross"].config["bi.steps"] >= 1 and kinds["bicross"].config["epochs"] == 1
    assert kinds["bicross"].metrics["test_docs"] == 1  # every test document by default, and the metrics say how many
    assert not kinds["bicross"].config["bi.cut_by_budget"]


def test_a_time_budget_cuts_training_and_the_job_says_how_long_it_took(db, tmp_path):
    # 6 epochs of 2 batches planned; a 3-second budget leaves no time after the fixed reserve: the loop stops after
    # the 3 steps it times, with its schedule ended there.
    def corpus_copy(pid: int) -> None:  # a pool corpus's copy (no gold) is asked about in campaigns, never trained on
        with db.session() as s:
            s.add(Document(project_id=pid, external_id="c1", title="Corpus copy", abstract="Heart.", split="corpus"))

    cfg = TrainConfig(batch_size=3, max_seq_length=48, epochs=6, train_cross=False, time_budget_min=0.05)
    pid, job = trained(db, tmp_path, cfg, before=corpus_copy)
    assert job.status == "done", job.error
    version = active_version(db, pid)
    assert version.config["bi.cut_by_budget"] and version.config["bi.steps"] == 3 < version.config["bi.planned_steps"]
    assert version.config["budget.reserved_seconds"] > 0 and 0 < job.result["minutes"] < 5
    assert version.config["train_docs"] + version.config["validation_docs"] == 5  # the train split, not the copy


def test_training_a_project_without_gold_labels_fails_with_a_message(db, tmp_path):
    pid = create_project(db, "p")
    import_taxonomy(db, pid, read_taxonomy(write(tmp_path / "t.csv", TAXONOMY_CSV)), "v1")
    job_id = enqueue(db, "train_model", pid, {})
    worker = WorkerProcess(db, Settings.from_env())
    worker.register()
    worker.run_one()
    job = get_job(db, job_id)
    assert job.status == "failed" and "no training document has a gold label" in job.error
    assert list_versions(db, pid) == []


@pytest.mark.slow  # trains a real model for several seconds
def test_a_project_too_small_for_the_sparse_backend_trains_without_it_and_says_so(db, tmp_path):
    two = "\n".join(CORPUS.splitlines()[:3] + CORPUS.splitlines()[-1:]) + "\n"  # two training documents, no word shared
    cfg = TrainConfig(batch_size=2, max_seq_length=32, train_cross=False, validation_share=0.0)
    pid, job = trained(db, tmp_path, cfg, two)
    assert job.status == "done", job.error
    assert any(n.startswith("bicross: no sparse backend:") for n in job.result["budget_notes"]), job.result
    version = active_version(db, pid)
    assert version.kind == "bicross" and version.config["bi.steps"] >= 1
