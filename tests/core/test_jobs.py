from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import update

import tests.fakes
from core.config import ROOT, Settings
from core.jobs import claim_next, enqueue, get_job, reap_orphans, request_cancel, wait_for
from core.worker import WorkerProcess, live_workers
from storage.db import Database
from storage.models import Job, utcnow
from tests.fakes import process_gone


def _claim_all(url: str, name: str, ready, go, out) -> None:
    own = Database(url)
    ready.put(name)
    go.wait(120)  # both processes start claiming at the same moment, however slowly each one started
    got = []
    while (job := claim_next(own, name, kinds=("test_sleep",))) is not None:
        got.append(job.id)
        time.sleep(0.02)  # "run" the job, so the other worker gets its turn (even on a loaded machine)
    out.put((name, got))


def test_two_competing_worker_processes_claim_each_job_exactly_once(db):
    import multiprocessing as mp

    ids = [enqueue(db, "test_sleep", None) for _ in range(60)]
    ctx = mp.get_context("spawn")
    out, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_claim_all, args=(db.url, n, ready, go, out)) for n in ("a", "b")]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    go.set()
    claimed = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    together = claimed["a"] + claimed["b"]
    assert sorted(together) == ids  # every job claimed, none twice
    assert claimed["a"] and claimed["b"]  # both really competed


def test_the_claim_is_a_compare_and_set_a_second_claimer_loses(db):
    job_id = enqueue(db, "test_sleep", None)
    first = claim_next(db, "a", kinds=("test_sleep",))
    assert first.id == job_id
    assert claim_next(db, "b", kinds=("test_sleep",)) is None
    with db.session() as s:
        assert s.get(Job, job_id).worker_id == "a"


def test_a_job_whose_worker_stopped_heartbeating_is_failed_or_retried(db):
    once = enqueue(db, "test_sleep", None, max_attempts=1)
    twice = enqueue(db, "test_sleep", None, max_attempts=2)
    claim_next(db, "w1", kinds=("test_sleep",))
    claim_next(db, "w1", kinds=("test_sleep",))
    assert reap_orphans(db, timeout_s=60) == []  # fresh heartbeats: nothing to reap
    later = utcnow() + dt.timedelta(seconds=61)
    assert sorted(reap_orphans(db, timeout_s=60, now=later)) == [once, twice]
    assert get_job(db, once).status == "failed"
    assert "stopped responding" in get_job(db, once).error
    assert get_job(db, twice).status == "queued"


def test_worker_runs_a_job_with_progress_and_result(db):
    job_id = enqueue(db, "test_sleep", None, {"seconds": 0.3})
    worker = WorkerProcess(db, Settings.from_env())
    worker.register()
    assert worker.run_one() == job_id
    job = get_job(db, job_id)
    assert job.status == "done" and job.progress == 1.0 and job.result["slept"] == 0.3
    assert 0 < job.result["peak_rss_gib"] < 100  # the job's peak memory, measured while it ran


def test_a_failing_job_is_marked_failed_and_the_worker_survives(db):
    bad = enqueue(db, "test_fail", None)
    good = enqueue(db, "test_sleep", None, {"seconds": 0.1})
    worker = WorkerProcess(db, Settings.from_env())
    worker.register()
    worker.run_one()
    worker.run_one()
    assert get_job(db, bad).status == "failed" and "unexpected RuntimeError" in get_job(db, bad).error
    assert "boom" not in get_job(db, bad).error  # the exception's words stay in the worker's log
    assert get_job(db, good).status == "done"


def test_cancel_stops_a_running_job_and_a_queued_one(db):
    running = enqueue(db, "test_sleep", None, {"seconds": 5})
    queued = enqueue(db, "test_sleep", None)
    worker = WorkerProcess(db, Settings.from_env())
    worker.register()
    t = threading.Thread(target=worker.run_one)
    t.start()
    while get_job(db, running).status != "running":
        time.sleep(0.05)
    request_cancel(db, running)
    request_cancel(db, queued)
    t.join(timeout=10)
    assert get_job(db, running).status == "cancelled"
    assert get_job(db, queued).status == "cancelled"


def _spawn_worker(data_dir, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "XMTC_DATA_DIR": str(data_dir), "XMTC_HEARTBEAT_TIMEOUT": "2"}
    return subprocess.Popen([sys.executable, "-m", "core.worker", "--import", "tests.fakes", *extra], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_killed_worker_process_is_detected_and_its_job_failed(db, data_dir):
    job_id = enqueue(db, "test_sleep", None, {"seconds": 60})
    proc = _spawn_worker(data_dir, "--no-lock")
    deadline = time.monotonic() + 60
    while get_job(db, job_id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert get_job(db, job_id).status == "running"
    assert live_workers(db, timeout_s=30) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with db.session() as s:  # the dead worker's last heartbeat ages past the timeout
        s.execute(update(Job).values(heartbeat_at=utcnow() - dt.timedelta(seconds=10)))
    assert reap_orphans(db, timeout_s=2) == [job_id]
    job = get_job(db, job_id)
    assert job.status == "failed" and "stopped responding" in job.error


def test_a_worker_process_runs_queued_jobs_and_exits_when_idle(db, data_dir):
    job_id = enqueue(db, "test_sleep", None, {"seconds": 0.2})
    proc = _spawn_worker(data_dir, "--idle-exit", "1")
    assert wait_for(db, job_id, timeout_s=60).status == "done"
    assert proc.wait(timeout=60) == 0


APP = """
import subprocess, sys, time
from core.worker import worker_command

BACKENDS = ("sqlite", "postgresql")  # every test using db runs on both (tests/conftest.py)
subprocess.Popen(worker_command("--import", "tests.fakes"), start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(600)
"""


def test_killing_the_app_stops_the_worker_it_started_and_gives_its_job_back(db, data_dir):
    """The worker the app starts (``worker_command``) watches the app: SIGKILL the app mid-job, and the worker
    exits within seconds, handing the job back (re-queued, as it has attempts left)."""
    from storage.models import Worker

    job_id = enqueue(db, "test_sleep", None, {"seconds": 120}, max_attempts=2)
    env = {**os.environ, "XMTC_DATA_DIR": str(data_dir)}
    app = subprocess.Popen([sys.executable, "-c", APP], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 90
        while get_job(db, job_id).status != "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert get_job(db, job_id).status == "running"
        with db.session() as s:
            pid = s.query(Worker.pid).scalar()
        app.send_signal(signal.SIGKILL)
        app.wait()
        deadline = time.monotonic() + 15
        while not process_gone(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert process_gone(pid), "the worker outlived the app"
        job = get_job(db, job_id)
        assert job.status == "queued" and "the app that started its worker" in job.message
        with db.session() as s:
            assert s.query(Worker.stopped).scalar() is True
    finally:
        if app.poll() is None:
            app.kill()


def test_a_job_that_needs_a_gpu_waits_for_a_worker_that_has_one(db):
    gpu_job = enqueue(db, "test_sleep", None, {"seconds": 0, "needs": ["gpu"]})
    cpu_job = enqueue(db, "test_sleep", None, {"seconds": 0})
    assert get_job(db, gpu_job).message == "waiting for a worker with: gpu"
    cpu = WorkerProcess(db, Settings.from_env(), capabilities=())
    cpu.register()
    assert cpu.run_one() == cpu_job  # the older job is not for it
    assert cpu.run_one() is None and get_job(db, gpu_job).status == "queued"
    gpu = WorkerProcess(db, Settings.from_env(), capabilities=("gpu",))
    gpu.register()
    assert gpu.run_one() == gpu_job and get_job(db, gpu_job).status == "done"


def test_a_reaped_job_that_goes_on_lands_nothing(db, monkeypatch):
    import core.worker
    from core.accounts.projects import create_project
    from core.model.versions import list_versions
    from storage.models import Project

    monkeypatch.setattr(core.worker, "HEARTBEAT_INTERVAL_S", 0.05)
    pid = create_project(db, "p")
    for report in (True, False):  # stopped at its next progress report; or, reporting nothing, at the registration
        tests.fakes.GATE.clear()
        job_id = enqueue(db, "test_register_version", pid, {"report": report}, max_attempts=2)
        worker = WorkerProcess(db, Settings.from_env())
        worker.register()
        runner = threading.Thread(target=worker.run_one)
        runner.start()
        deadline = time.monotonic() + 20
        while get_job(db, job_id).progress < 0.1 and time.monotonic() < deadline:
            time.sleep(0.02)
        # The worker looks dead to another one: the job is reaped and queued again for a new attempt.
        assert reap_orphans(db, 60, now=utcnow() + dt.timedelta(minutes=5)) == [job_id]
        time.sleep(0.2)  # the worker's own heartbeat hears that the job is no longer its own
        tests.fakes.GATE.set()
        runner.join(30)
        job = get_job(db, job_id)
        assert job.status == "queued" and job.attempts == 1 and "stopped responding" in job.message
        assert list_versions(db, pid) == []
        with db.session() as s:
            assert s.get(Project, pid).active_model_version_id is None
            s.execute(update(Job).where(Job.id == job_id).values(status="cancelled"))


def test_a_reaped_job_stops_at_its_next_report_even_when_the_heartbeat_missed_it(db):
    from core.errors import JobLost
    from core.jobs import JobContext

    job_id = enqueue(db, "test_sleep", None, max_attempts=2)
    claim_next(db, "w1", kinds=("test_sleep",))
    ctx = JobContext(db, job_id, None, {}, "w1")
    ctx.progress(0.2, "working", force=True)
    reap_orphans(db, 60, now=utcnow() + dt.timedelta(minutes=5))
    with pytest.raises(JobLost):
        ctx.progress(0.3, "still working", force=True)
    with pytest.raises(JobLost):
        ctx.check_cancel()
    claim_next(db, "w2", kinds=("test_sleep",))  # another worker takes the job: the first one's reports stay out
    with pytest.raises(JobLost):
        JobContext(db, job_id, None, {}, "w1").progress(0.9, "late", force=True)
    assert get_job(db, job_id).progress == 0.0


def test_the_heartbeat_survives_a_database_hiccup(db, monkeypatch):
    from sqlalchemy.exc import OperationalError

    import core.worker

    monkeypatch.setattr(core.worker, "HEARTBEAT_INTERVAL_S", 0.05)
    calls = []
    real = core.worker.heartbeat

    def flaky(database, job_id, worker_id):
        calls.append(job_id)
        if len(calls) <= 3:
            raise OperationalError("UPDATE jobs", {}, Exception("database is locked"))
        return real(database, job_id, worker_id)

    monkeypatch.setattr(core.worker, "heartbeat", flaky)
    job_id = enqueue(db, "test_sleep", None, {"seconds": 0.6})
    worker = WorkerProcess(db, Settings.from_env())
    worker.register()
    worker.run_one()
    assert get_job(db, job_id).status == "done" and len(calls) > 5  # it went on beating after the errors


def test_a_job_that_runs_the_machine_out_of_memory_says_so(db, data_dir):
    job_id = enqueue(db, "test_sleep", None, {"seconds": 20})
    # A floor above any machine's memory: the watch sees "no memory left" at its first sample.
    env = {**os.environ, "XMTC_DATABASE_URL": db.url, "XMTC_MEMORY_FLOOR_GIB": "100000"}
    done = subprocess.run([sys.executable, "-m", "core.worker", "--once", "--no-lock", "--import", "tests.fakes"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    job = get_job(db, job_id)
    assert done.returncode == 137 and job.status == "failed" and job.message == "failed: out of memory"
    assert job.error.startswith("killed: out of memory at ") and "GiB" in job.error
    assert live_workers(db, 60) == 0  # the worker said it stopped
