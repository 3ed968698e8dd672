"""The job queue in the database: enqueue, atomic claim, progress, heartbeat, cancel, orphan reaping."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from core.accounts.auth import check_admin
from core.accounts.events import log_event
from core.config import Settings
from core.errors import JobCancelled, JobLost, NotFound
from storage.db import Database
from storage.models import (
    JOB_CANCELLED,
    JOB_DONE,
    JOB_FAILED,
    JOB_FINAL_STATES,
    JOB_QUEUED,
    JOB_RUNNING,
    Job,
    utcnow,
)

Handler = Callable[["JobContext"], dict[str, Any] | None]
HANDLERS: dict[str, Handler] = {}
TITLES: dict[str, str] = {}
HANDLER_MODULES = ("core.tasks", "core.model.predictions", "core.newlabels.jobs", "core.evaluation.jobs", "core.taxonomy.update")


def load_handlers(extra: tuple[str, ...] = ()) -> None:
    """Import the modules that register job kinds (their handlers and titles)."""
    import importlib

    for module in (*HANDLER_MODULES, *extra):
        importlib.import_module(module)


def job_handler(kind: str, title: str) -> Callable[[Handler], Handler]:
    """Register ``fn`` as the handler of jobs of ``kind`` (``title`` is shown in the UI)."""

    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        TITLES[kind] = title
        return fn

    return register


def eta_text(seconds: float) -> str:
    """A remaining time as people say it: "ETA 40 s", "ETA 12 min", "ETA 1.5 h"."""
    if seconds < 90:
        return f"ETA {max(0, round(seconds))} s"
    if seconds < 90 * 60:
        return f"ETA {round(seconds / 60)} min"
    return f"ETA {seconds / 3600:.1f} h"


@dataclass(frozen=True)
class JobView:
    """A detached snapshot of a job row for display."""

    id: int
    kind: str
    status: str
    progress: float
    message: str
    error: str
    result: dict[str, Any]
    attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    cancel_requested: bool

    @property
    def title(self) -> str:
        return TITLES.get(self.kind, self.kind)

    @property
    def active(self) -> bool:
        return self.status not in JOB_FINAL_STATES

    def eta_s(self, now: dt.datetime | None = None) -> float | None:
        """Seconds left for a running job at the rate it has progressed so far (None before 2% or when not
        running: too early to tell)."""
        if self.status != JOB_RUNNING or self.started_at is None or self.progress < 0.02:
            return None
        elapsed = ((now or utcnow()) - self.started_at).total_seconds()
        return elapsed * (1 - self.progress) / self.progress

    @classmethod
    def of(cls, job: Job) -> JobView:
        return cls(job.id, job.kind, job.status, job.progress, job.message, job.error, dict(job.result or {}),
                   job.attempts, job.created_at, job.started_at, job.finished_at, job.cancel_requested)


def enqueue(db: Database, kind: str, project_id: int | None, params: dict[str, Any] | None = None,
            user_id: int | None = None, max_attempts: int = 1, settings: Settings | None = None) -> int:
    """Queue a job and return its id. ``max_attempts > 1`` lets a job orphaned by a dead worker be retried.

    The job carries ``settings``' job fields (default: this process's settings), under ``params["settings"]``:
    whichever worker claims it runs it with the data folders it was queued with.
    """
    with db.session() as s:
        return enqueue_in(s, kind, project_id, params, user_id, max_attempts, settings)


def enqueue_in(s: Session, kind: str, project_id: int | None, params: dict[str, Any] | None = None,
               user_id: int | None = None, max_attempts: int = 1, settings: Settings | None = None) -> int:
    """:func:`enqueue` inside the caller's transaction (to queue a job atomically with what decided to queue it)."""
    carried = (settings or Settings.from_env()).job_snapshot()
    check_admin(s, user_id)  # users start jobs only as admins; the system (user_id None) queues its own
    needs = (params or {}).get("needs") or []
    waiting = f"waiting for a worker with: {', '.join(needs)}" if needs else "waiting for a worker"
    job = Job(kind=kind, project_id=project_id, params={**(params or {}), "settings": carried}, created_by=user_id,
              max_attempts=max_attempts, message=waiting)
    s.add(job)
    s.flush()
    log_event(s, "job_queued", project_id, user_id, job_id=job.id, job_kind=kind)
    return job.id


def get_job(db: Database, job_id: int) -> JobView:
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NotFound(f"Job {job_id} does not exist.")
        return JobView.of(job)


def list_jobs(db: Database, project_id: int | None, limit: int = 20, kinds: tuple[str, ...] = ()) -> list[JobView]:
    """Newest jobs first."""
    with db.session() as s:
        q = select(Job).where(Job.project_id == project_id).order_by(Job.id.desc()).limit(limit)
        if kinds:
            q = q.where(Job.kind.in_(kinds))
        return [JobView.of(j) for j in s.scalars(q)]


def request_cancel(db: Database, job_id: int, user_id: int | None = None) -> None:
    """Ask a job to stop: a queued job is cancelled at once, a running one at its next progress report."""
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise NotFound(f"Job {job_id} does not exist.")
        s.execute(update(Job).where(Job.id == job_id, Job.status == JOB_QUEUED)
                  .values(status=JOB_CANCELLED, finished_at=utcnow(), message="cancelled before it started"))
        s.execute(update(Job).where(Job.id == job_id, Job.status == JOB_RUNNING).values(cancel_requested=True))
        log_event(s, "job_cancel_requested", job.project_id, user_id, job_id=job_id)


CLAIM_SCAN = 50  # queued jobs a worker looks at for one it can run


def claim_next(db: Database, worker_id: str, kinds: tuple[str, ...] | None = None, only: int | None = None,
               capabilities: tuple[str, ...] = ()) -> Job | None:
    """Atomically claim the oldest queued job this worker can run (compare-and-set on its status), or return None;
    ``only``: that job. A job whose ``params["needs"]`` (e.g. ``["gpu"]``) are not all in ``capabilities`` is left
    for a worker that has them.

    Two workers racing for one job both try ``UPDATE ... WHERE status='queued'``; the database
    lets exactly one of them change the row, the other sees rowcount 0 and tries the next job.
    """
    kinds = tuple(HANDLERS) if kinds is None else kinds
    for _ in range(10):
        with db.session() as s:
            q = select(Job.id, Job.params).where(Job.status == JOB_QUEUED, Job.kind.in_(kinds))
            if only is not None:
                q = q.where(Job.id == only)
            # PostgreSQL: lock the candidate rows and skip rows another worker holds (SQLite ignores the clause and
            # relies on the compare-and-set below, as every backend does).
            rows = s.execute(q.order_by(Job.id).limit(CLAIM_SCAN).with_for_update(skip_locked=True)).all()
            job_id = next((i for i, params in rows if set((params or {}).get("needs") or ()) <= set(capabilities)), None)
            if job_id is None:
                return None
            now = utcnow()
            res = s.execute(update(Job).where(Job.id == job_id, Job.status == JOB_QUEUED).values(
                status=JOB_RUNNING, worker_id=worker_id, attempts=Job.attempts + 1, started_at=now,
                heartbeat_at=now, message="started", error=""))
            if res.rowcount == 1:
                return s.get(Job, job_id)
    return None


def heartbeat(db: Database, job_id: int, worker_id: str) -> bool:
    """Refresh a running job's heartbeat; False when the job is no longer ours."""
    with db.session() as s:
        res = s.execute(update(Job).where(Job.id == job_id, Job.worker_id == worker_id, Job.status == JOB_RUNNING)
                        .values(heartbeat_at=utcnow()))
        return res.rowcount == 1


def finish(db: Database, job_id: int, worker_id: str, status: str, result: dict[str, Any] | None = None,
           error: str = "", message: str = "") -> bool:
    """Record a job's end, unless it was reaped meanwhile (then nothing is overwritten)."""
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error[:4000],
                              "message": message or status}
    if status == JOB_DONE:
        values["progress"] = 1.0
    if result is not None:
        values["result"] = result
    with db.session() as s:
        res = s.execute(update(Job).where(Job.id == job_id, Job.worker_id == worker_id, Job.status == JOB_RUNNING)
                        .values(**values))
        return res.rowcount == 1


def _hand_back(job: Job, reason: str, now: dt.datetime) -> dict[str, Any]:
    """The row values that give a running job back: queued again when it has attempts left and nobody asked to
    cancel it, else failed, naming ``reason``."""
    if job.attempts < job.max_attempts and not job.cancel_requested:
        return {"status": JOB_QUEUED, "worker_id": None, "message": f"re-queued: {reason}", "progress": 0.0}
    return {"status": JOB_FAILED, "finished_at": now, "message": "failed: its worker stopped",
            "error": f"Job stopped: {reason}. Nothing it was writing was kept; start it again."}


def reap_orphans(db: Database, timeout_s: float, now: dt.datetime | None = None) -> list[int]:
    """Find running jobs whose worker stopped heartbeating; retry them or mark them failed.

    Returns:
        The ids of the jobs reaped.
    """
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=timeout_s)
    stale = and_(Job.status == JOB_RUNNING, or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff))
    reaped: list[int] = []
    with db.session() as s:
        for job in s.scalars(select(Job).where(stale)).all():
            values = _hand_back(job, f"the worker {job.worker_id} stopped responding (no heartbeat for {int(timeout_s)} s)",
                                now)
            res = s.execute(update(Job).where(Job.id == job.id, stale).values(**values))
            if res.rowcount == 1:
                reaped.append(job.id)
                log_event(s, "job_orphaned", job.project_id, None, job_id=job.id, outcome=values["status"])
    return reaped


def release(db: Database, job_id: int, worker_id: str, reason: str) -> None:
    """A worker that must stop now gives its running job back, by the same rule as :func:`reap_orphans`."""
    mine = and_(Job.id == job_id, Job.status == JOB_RUNNING, Job.worker_id == worker_id)
    with db.session() as s:
        job = s.scalar(select(Job).where(mine))
        if job is not None:
            s.execute(update(Job).where(mine).values(**_hand_back(job, reason, utcnow())))


@dataclass(frozen=True)
class JobOwner:
    """A running job and the worker that claimed it: what a handler's lasting writes (a model version) are made as."""

    job_id: int
    worker_id: str

    def hold(self, s: Session) -> None:
        """Inside the caller's transaction: make sure the job is still running under this worker, and keep it so until
        the transaction ends (the row is written first: a row lock on PostgreSQL, the write lock on SQLite, so the
        reaper cannot take the job in between).

        Raises:
            JobLost: the job was reaped, finished or handed to another worker.
        """
        held = s.execute(update(Job).where(Job.id == self.job_id, Job.worker_id == self.worker_id,
                                           Job.status == JOB_RUNNING).values(heartbeat_at=utcnow())).rowcount
        if not held:
            raise JobLost(f"Job {self.job_id} is no longer run by this worker (it was reaped as orphaned or handed "
                          "to another worker): nothing more of it is written.")


class JobContext:
    """What a running handler sees: its parameters, the database, and progress/cancel reporting."""

    def __init__(self, db: Database, job_id: int, project_id: int | None, params: dict[str, Any], worker_id: str,
                 min_interval_s: float = 0.5) -> None:
        self.db = db
        self.job_id = job_id
        self.project_id = project_id
        self.params = params
        self.worker_id = worker_id
        self._min_interval = min_interval_s
        self._last = 0.0
        self.lost = False  # set by the worker's heartbeat when the database says the job is no longer ours
        self.settings = Settings.from_env().for_job(params.get("settings"))

    @property
    def owner(self) -> JobOwner:
        return JobOwner(self.job_id, self.worker_id)

    def _lost(self) -> JobLost:
        self.lost = True
        return JobLost(f"Job {self.job_id} is no longer run by this worker (it was reaped as orphaned or handed to "
                       "another worker): it stops here.")

    def progress(self, fraction: float, message: str = "", force: bool = False) -> None:
        """Report progress (0..1) and a message; raises :class:`JobCancelled` if cancel was requested and
        :class:`JobLost` once the job is no longer this worker's (reaped as orphaned).

        Writes are throttled to one per ``min_interval_s`` unless ``force``.
        """
        if self.lost:
            raise self._lost()
        now = time.monotonic()
        if not force and now - self._last < self._min_interval:
            return
        self._last = now
        with self.db.session() as s:
            mine = s.execute(update(Job).where(Job.id == self.job_id, Job.worker_id == self.worker_id,
                                               Job.status == JOB_RUNNING)
                             .values(progress=max(0.0, min(1.0, fraction)), message=message[:1000],
                                     heartbeat_at=utcnow())).rowcount
            cancel = s.scalar(select(Job.cancel_requested).where(Job.id == self.job_id))
        if not mine:
            raise self._lost()
        if cancel:
            raise JobCancelled("cancelled by a user")

    def cancelled(self) -> bool:
        """Whether a user asked this job to stop (no progress write); raises :class:`JobLost` when it is no longer
        this worker's."""
        with self.db.session() as s:
            row = s.execute(select(Job.cancel_requested, Job.status, Job.worker_id).where(Job.id == self.job_id)).first()
        if self.lost or row is None or row.status != JOB_RUNNING or row.worker_id != self.worker_id:
            raise self._lost()
        return bool(row.cancel_requested)

    def check_cancel(self) -> None:
        """Raise :class:`JobCancelled` if a cancel was requested (no progress write), :class:`JobLost` if the job is
        no longer this worker's."""
        if self.cancelled():
            raise JobCancelled("cancelled by a user")


def wait_for(db: Database, job_id: int, timeout_s: float = 600, poll_s: float = 0.2) -> JobView:
    """Block until a job reaches a final state (for scripts and tests)."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = get_job(db, job_id)
        if not job.active or time.monotonic() > deadline:
            return job
        time.sleep(poll_s)


__all__ = [
    "HANDLERS",
    "JOB_CANCELLED",
    "JOB_DONE",
    "JOB_FAILED",
    "JobContext",
    "JobOwner",
    "JobView",
    "claim_next",
    "enqueue",
    "enqueue_in",
    "finish",
    "get_job",
    "heartbeat",
    "job_handler",
    "list_jobs",
    "reap_orphans",
    "release",
    "request_cancel",
    "wait_for",
]
