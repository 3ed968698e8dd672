"""One artifact store for every machine: a worker with its own data folder trains into the shared store, and the
app, with no worker of its own, activates and serves what it trained."""

from __future__ import annotations

from core.accounts.projects import create_project
from core.config import Settings
from core.data.concepts import read_taxonomy
from core.data.corpus import ColumnMapping, read_csv
from core.data.imports import import_corpus, import_taxonomy
from core.data.reports import ImportReport
from core.jobs import enqueue, get_job
from core.model.loading import load_ranker
from core.model.training import TrainConfig
from core.model.versions import activate, list_versions
from core.worker import WorkerProcess
from storage.db import Database
from tests.core.test_train_job import CORPUS
from tests.fakes import TAXONOMY_CSV, write


def test_worker_b_trains_into_the_store_and_the_app_serves_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'team.db'}"
    store = tmp_path / "store"  # e.g. an NFS mount on every machine
    app = Settings.from_env({"XMTC_DATA_DIR": str(tmp_path / "app"), "XMTC_DATABASE_URL": url, "XMTC_STORE": str(store),
                             "XMTC_START_WORKER": "0"})
    worker_b = Settings.from_env({"XMTC_DATA_DIR": str(tmp_path / "gpu-box"), "XMTC_DATABASE_URL": url,
                                  "XMTC_STORE": str(store)})
    db = Database(url)
    db.create_all()
    pid = create_project(db, "p")
    import_taxonomy(db, pid, read_taxonomy(write(tmp_path / "t.csv", TAXONOMY_CSV)), "v1")
    report = ImportReport()
    import_corpus(db, pid, read_csv(write(tmp_path / "c.csv", CORPUS), ColumnMapping(id="doc_id", labels="tags", split="split"),
                                    report), report)
    cfg = TrainConfig(batch_size=3, max_seq_length=48, train_cross=False)
    job_id = enqueue(db, "train_model", pid, {"config": cfg.as_dict(), "activate": False}, settings=app)

    worker = WorkerProcess(db, worker_b)  # another machine: its own data folder, the same database and store
    worker.register()
    assert worker.run_one() == job_id
    assert get_job(db, job_id).status == "done", get_job(db, job_id).error

    trained = next(v for v in list_versions(db, pid) if v.kind == "bicross")
    assert trained.path.startswith(str(store / "models"))
    assert not (tmp_path / "gpu-box" / "models").exists() and not (tmp_path / "app" / "models").exists()
    assert not list((store / "models").rglob("*.tmp*"))  # written under a temporary name, then renamed
    activate(db, pid, trained.id)  # the app: activates and serves B's bundle from the store
    ranked = load_ranker(trained.path, "cpu").rank(["Acute myocardial infarction after thrombolysis."], k=3)[0]
    assert len(ranked) == 3 and all(p.label_id for p in ranked)
    db.dispose()
