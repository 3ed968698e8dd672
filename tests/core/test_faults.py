"""Faults: a worker killed mid-training, a locked database, a full disk, an unusable data folder."""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import func, select

from core.config import ROOT, Settings
from core.errors import StorageError
from core.jobs import enqueue, get_job, job_handler, reap_orphans
from core.model.training import TrainConfig
from core.model.versions import active_version, write_bundle
from core.newlabels.campaigns import CampaignConfig, add_questions, answer, claim_next, create_campaign
from core.worker import WorkerProcess
from storage.models import Annotation, ModelVersion


@job_handler("test_disk_full", "Disk full (test)")
def disk_full_job(ctx) -> dict:
    raise OSError(errno.ENOSPC, "No space left on device", "/data/models/x")


@pytest.mark.slow  # trains a real model for several seconds
def test_a_worker_killed_mid_training_leaves_the_previous_version_serving(world, data_dir):
    """kill -9 during real training: the job fails, no half-written version appears, the old one still serves."""
    db, pid = world["db"], world["pid"]
    before = active_version(db, pid)
    cfg = TrainConfig(epochs=300, batch_size=2, max_seq_length=32, cross_max_length=32, train_baseline=False)
    job = enqueue(db, "train_model", pid, {"config": cfg.as_dict(), "eval_docs": 1})
    proc = subprocess.Popen([sys.executable, "-m", "core.worker", "--once"], cwd=ROOT,
                            env={**os.environ, "XMTC_DATA_DIR": str(data_dir)})
    deadline = time.monotonic() + 120
    while get_job(db, job).progress < 0.05 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the training finished before it could be killed"
    assert get_job(db, job).status == "running"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert reap_orphans(db, timeout_s=0) == [job]
    view = get_job(db, job)
    assert view.status == "failed" and "stopped responding" in view.error
    assert active_version(db, pid).id == before.id
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ModelVersion)) == 1
    bundles = [p.name for p in (data_dir / "models" / f"project-{pid}").iterdir()]
    assert len([b for b in bundles if not b.startswith(".tmp-")]) == 1  # only the version that serves


def test_answers_wait_for_a_database_locked_for_seconds_and_are_stored(world):
    db, pid, labels, sme = world["db"], world["pid"], world["labels"], world["users"][0]
    cid = create_campaign(db, pid, "c", [labels["onc"]], None, CampaignConfig(train_after_positives=100))
    add_questions(db, cid, [(d, labels["onc"]) for d in world["docs"]], world["version"], 1)
    q = claim_next(db, cid, sme)
    locked = threading.Event()

    def hold_lock() -> None:
        con = sqlite3.connect(db.engine.url.database, timeout=30)
        con.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(2.0)
        con.rollback()
        con.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    locked.wait(10)
    started = time.monotonic()
    answer(db, q.item_id, sme, "yes")  # waits for the lock (busy timeout), then is stored
    waited = time.monotonic() - started
    holder.join()
    assert waited >= 1.5
    with db.session() as s:
        assert s.scalar(select(Annotation.answer).where(Annotation.queue_item_id == q.item_id)) == "yes"


def test_a_full_disk_fails_the_bundle_write_with_a_message_and_keeps_nothing(tmp_path):
    def fill(folder):
        (folder / "part").write_text("x")
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "weights"))

    with pytest.raises(StorageError, match="The disk is full while writing the model bundle"):
        write_bundle(tmp_path / "models", 1, "bicross", fill)
    assert list((tmp_path / "models" / "project-1").iterdir()) == []


def test_a_job_that_hits_a_full_disk_is_failed_with_a_message(db):
    job = enqueue(db, "test_disk_full", None)
    WorkerProcess(db, Settings.from_env()).run_one()
    view = get_job(db, job)
    assert view.status == "failed" and view.error.startswith("The disk is full") and "Traceback" not in view.error


def test_an_unwritable_models_folder_is_named(tmp_path):
    blocker = tmp_path / "models"
    blocker.write_text("a file where the models folder should be")
    with pytest.raises(StorageError, match="model bundle"):
        write_bundle(blocker, 1, "bicross", lambda folder: {})


def test_the_app_says_what_to_do_when_the_data_folder_cannot_be_used(tmp_path, monkeypatch):
    from tests.pages.conftest import app, texts

    not_a_folder = tmp_path / "var"
    not_a_folder.write_text("a file, not a folder")
    monkeypatch.setenv("XMTC_DATA_DIR", str(not_a_folder))
    monkeypatch.delenv("XMTC_DATABASE_URL", raising=False)
    at = app().run()
    assert not at.exception
    assert "Cannot open the database" in texts(at) and "Set XMTC_DATA_DIR to a writable folder" in texts(at)
