"""The worker process: claims queued jobs, runs them with heartbeats, honours cancel."""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select, update

from core.config import ROOT, Settings
from core.errors import JobCancelled, JobLost, XmtcError, storage_error
from core.jobs import HANDLERS, JobContext, claim_next, finish, heartbeat, load_handlers, reap_orphans, release
from storage.db import Database
from storage.migrate import SchemaBehind
from storage.models import JOB_CANCELLED, JOB_DONE, JOB_FAILED, Worker, utcnow

log = logging.getLogger("xmtc.worker")
HEARTBEAT_INTERVAL_S = 5.0


def memory_gib() -> tuple[float, float, float]:
    """This process's resident memory, the memory still available to it and the memory in all (GiB), from
    /proc (a cgroup's limit counts where one is set)."""
    def kib(text: str, key: str) -> float:
        for line in text.splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
        return 0.0

    gib = 1024.0 ** 3
    try:
        status = Path("/proc/self/status").read_text()
        info = Path("/proc/meminfo").read_text()
    except OSError:  # not Linux: nothing to watch
        return 0.0, float("inf"), float("inf")
    rss, total, available = kib(status, "VmRSS") * 1024, kib(info, "MemTotal") * 1024, kib(info, "MemAvailable") * 1024
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit.isdigit():
            used = float((cgroup / "memory.current").read_text())
            total, available = min(total, float(limit)), min(available, float(limit) - used)
    except OSError:
        pass
    return rss / gib, available / gib, total / gib


class MemoryWatch:
    """Watches a running job's memory: its peak, and the machine's available memory. When the machine is about to
    run out, the job is failed with ``killed: out of memory at N GiB`` and the worker exits, before the kernel's
    OOM killer ends it without a word (its row would only say that the worker stopped responding)."""

    def __init__(self, on_exhausted: Callable[[str], None], floor_gib: float = 0.4, interval_s: float = 0.5) -> None:
        self.on_exhausted, self.floor_gib, self.interval_s = on_exhausted, floor_gib, interval_s
        self.peak_gib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-watch", daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        rss, available, total = memory_gib()
        self.peak_gib = max(self.peak_gib, rss)
        if available < self.floor_gib:
            self.on_exhausted(f"killed: out of memory at {rss:.1f} GiB (the machine had {available:.1f} of its "
                              f"{total:.1f} GiB left). Free memory or run it on a larger machine; nothing it was "
                              "writing was kept.")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()


class WorkerProcess:
    """One worker loop over one database."""

    def __init__(self, db: Database, settings: Settings, poll_s: float = 1.0,
                 capabilities: tuple[str, ...] | None = None) -> None:
        load_handlers()
        self.capabilities = detect_capabilities() if capabilities is None else tuple(capabilities)
        self.db = db
        self.settings = settings
        self.poll_s = poll_s
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._last_beat = 0.0
        self.current_job: int | None = None

    def stop(self, *_: object) -> None:
        self._stop.set()

    def register(self) -> None:
        with self.db.session() as s:
            s.add(Worker(id=self.id, host=socket.gethostname(), pid=os.getpid(), capabilities=list(self.capabilities)))

    def beat(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_beat < HEARTBEAT_INTERVAL_S:
            return
        self._last_beat = time.monotonic()
        with self.db.session() as s:
            s.execute(update(Worker).where(Worker.id == self.id).values(heartbeat_at=utcnow(), stopped=False))

    def run_one(self, only: int | None = None) -> int | None:
        """Reap orphans, claim one job (``only``: that one) and run it. Returns the job id, or None when idle."""
        reap_orphans(self.db, self.settings.worker_heartbeat_timeout_s)
        job = claim_next(self.db, self.id, only=only, capabilities=self.capabilities)
        if job is None:
            return None
        self.current_job = job.id
        ctx = JobContext(self.db, job.id, job.project_id, dict(job.params or {}), self.id)
        done = threading.Event()

        def keep_alive() -> None:
            # Long steps (one training epoch) report no progress for a while; the job must not look dead.
            while not done.wait(HEARTBEAT_INTERVAL_S):
                try:
                    if not heartbeat(self.db, job.id, self.id):
                        # Reaped as orphaned (or handed on): the handler stops at its next progress report, and
                        # nothing it would still register can land (JobOwner.hold).
                        log.warning("job %s is no longer this worker's; it stops at its next report", job.id)
                        ctx.lost = True
                        return
                    self.beat(force=True)
                except Exception:  # a database hiccup must not end the heartbeat for good: the job would be reaped
                    log.warning("heartbeat of job %s failed; trying again in %.0f s", job.id, HEARTBEAT_INTERVAL_S,
                                exc_info=True)

        def out_of_memory(message: str) -> None:
            log.error("job %s: %s", job.id, message)
            finish(self.db, job.id, self.id, JOB_FAILED, error=message, message="failed: out of memory")
            with self.db.session() as s:
                s.execute(update(Worker).where(Worker.id == self.id).values(stopped=True))
            os._exit(137)  # at once: every allocation from here on brings the kernel's OOM killer closer

        beater = threading.Thread(target=keep_alive, daemon=True)
        beater.start()
        watch = MemoryWatch(out_of_memory, self.settings.memory_floor_gib).__enter__()
        try:
            result = HANDLERS[job.kind](ctx) or {}
            result = {**result, "peak_rss_gib": round(max(watch.peak_gib, memory_gib()[0]), 2)}
        except JobCancelled:
            finish(self.db, job.id, self.id, JOB_CANCELLED, message="cancelled")
        except JobLost:  # the job's row belongs to the reaper's outcome (or another worker) now: leave it alone
            log.warning("job %s stopped: it is no longer this worker's", job.id)
        except XmtcError as exc:
            finish(self.db, job.id, self.id, JOB_FAILED, error=str(exc), message="failed")
        except OSError as exc:  # a full disk or an unwritable folder: say so, not a traceback
            finish(self.db, job.id, self.id, JOB_FAILED, error=str(storage_error(exc, "the job's files")), message="failed")
        except Exception as exc:  # a bug must fail the job, not kill the worker
            log.exception("job %s failed", job.id)
            # Every signed-in user sees a job's error: an unexpected exception's words may quote what a file holds,
            # so they go to the worker's log only.
            finish(self.db, job.id, self.id, JOB_FAILED, message="failed",
                   error=f"An unexpected {type(exc).__name__} stopped the job (a bug; the worker's log on "
                         f"{socket.gethostname()} has the details).")
        else:
            finish(self.db, job.id, self.id, JOB_DONE, result=result, message="done")
        finally:
            done.set()
            beater.join()
            watch.__exit__()
            self.current_job = None
        return job.id

    def abandon(self, reason: str) -> None:
        """Give back the running job (re-queued when it has attempts left, else failed with ``reason``) and mark
        this worker stopped: for a worker that must end now, in the middle of a job."""
        job_id = self.current_job
        if job_id is not None:
            release(self.db, job_id, self.id, reason)
        with self.db.session() as s:
            s.execute(update(Worker).where(Worker.id == self.id).values(stopped=True))

    def serve(self, once: bool = False, idle_exit_s: float | None = None) -> None:
        """Loop until stopped (or after one job with ``once``, or after ``idle_exit_s`` idle)."""
        self.register()
        idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                self.beat()
                ran = self.run_one()
                if ran is not None:
                    idle_since = time.monotonic()
                    if once:
                        break
                    continue
                if idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                    break
                self._stop.wait(self.poll_s)
        finally:
            with self.db.session() as s:
                s.execute(update(Worker).where(Worker.id == self.id).values(stopped=True))


def detect_capabilities() -> tuple[str, ...]:
    """What this machine can run: ``gpu`` when torch sees a CUDA device (``XMTC_DEVICE=cpu`` turns it off)."""
    if Settings.from_env().device == "cpu":
        return ()
    try:
        import torch
    except ImportError:
        return ()
    return ("gpu",) if torch.cuda.is_available() else ()


def exit_with_parent(worker: WorkerProcess, poll_s: float = 1.0) -> threading.Thread:
    """Watch the process that started this worker (the app); when it is gone (Ctrl-C, SIGTERM, a crash), give the
    running job back and exit at once, even in the middle of a training step.

    The parent is watched by its pid (a child is re-parented when its parent dies): the app starts workers from
    a short-lived script thread, so the kernel's parent-death signal, which follows that thread, cannot be used.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        log.info("the app (pid %s) that started this worker stopped; exiting", parent)
        try:
            worker.abandon(f"the app that started its worker (pid {parent}) stopped")
        finally:
            os._exit(0)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def live_workers(db: Database, timeout_s: float) -> int:
    """Number of workers that heartbeated within ``timeout_s``."""
    import datetime as dt

    cutoff = utcnow() - dt.timedelta(seconds=timeout_s)
    with db.session() as s:
        return len(s.scalars(select(Worker.id).where(Worker.stopped.is_(False), Worker.heartbeat_at >= cutoff)).all())


def _lock_path(settings: Settings) -> Path:
    return settings.data_dir / "worker.lock"


def local_worker_running(settings: Settings) -> bool:
    """True while a local worker holds the data folder's worker lock."""
    path = _lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def worker_command(*extra: str) -> list[str]:
    """The command line of a worker started by the app: it lives and dies with the app's process."""
    return [sys.executable, "-m", "core.worker", "--exit-with-parent", *extra]


def ensure_worker(db: Database, settings: Settings) -> bool:
    """Start a local worker process when none is alive. Returns True if one was started."""
    if not settings.start_worker or live_workers(db, settings.worker_heartbeat_timeout_s):
        return False
    if local_worker_running(settings):
        return False
    log_file = open(settings.data_dir / "worker.log", "ab")  # noqa: SIM115 - handed to the child
    env = {**os.environ, "XMTC_DATA_DIR": str(settings.data_dir), "XMTC_DATABASE_URL": settings.db_url}
    subprocess.Popen(worker_command(), cwd=ROOT, env=env, stdout=log_file,
                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run queued jobs (training, indexing, imports).")
    parser.add_argument("--once", action="store_true", help="exit after one job")
    parser.add_argument("--idle-exit", type=float, default=None, help="exit after this many idle seconds")
    parser.add_argument("--import", dest="modules", action="append", default=[],
                        help="extra module registering job handlers (may repeat)")
    parser.add_argument("--no-lock", action="store_true", help="do not take the local worker lock")
    parser.add_argument("--capabilities", default=None,
                        help="what this worker can run, comma-separated (e.g. gpu); default: detected")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="exit (giving the running job back) when the process that started this one ends")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    load_handlers(tuple(args.modules))
    db = Database(settings.db_url)
    try:
        db.prepare()
    except SchemaBehind as exc:
        log.error("%s", exc)
        raise SystemExit(2) from exc
    lock = None
    if not args.no_lock:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        lock = open(_lock_path(settings), "a")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another local worker holds %s; exiting", _lock_path(settings))
            return
    declared = None if args.capabilities is None else tuple(c.strip() for c in args.capabilities.split(",") if c.strip())
    worker = WorkerProcess(db, settings, capabilities=declared)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    if args.exit_with_parent:
        exit_with_parent(worker)
    log.info("worker %s serving %s (jobs: %s; can run: %s)", worker.id, settings.db_url, ", ".join(sorted(HANDLERS)),
             ", ".join(worker.capabilities) or "cpu only")
    worker.serve(once=args.once, idle_exit_s=args.idle_exit)


if __name__ == "__main__":
    main()
