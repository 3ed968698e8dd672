"""Model versions: immutable bundles on disk, written atomically, one active per project."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from core.accounts.auth import check_admin
from core.accounts.events import log_event
from core.errors import ModelError, NotFound, XmtcError, storage_error
from core.jobs import JobOwner
from storage.db import Database
from storage.models import ModelVersion, Project, utcnow

BUNDLE_FORMAT = 1
MANIFEST = "manifest.json"
SERVING_KINDS = ("zero_shot", "bicross", "baseline")  # the kinds that rank labels (others: e.g. "gpl" encoders)
STALE_TMP_S = 6 * 3600  # a temporary bundle folder this old belongs to a writer that died


@dataclass(frozen=True)
class VersionView:
    """A detached snapshot of a model version row."""

    id: int
    number: int
    kind: str
    path: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    created_at: Any
    active: bool

    @property
    def name(self) -> str:
        return f"v{self.number} ({self.kind})"


def write_bundle(models_dir: Path, project_id: int, kind: str, fill: Callable[[Path], dict[str, Any]]) -> Path:
    """Write a bundle atomically: ``fill(tmp)`` writes files into a temporary folder and returns
    the manifest's content; the folder is then renamed into place, so a crash mid-write leaves
    no bundle that could be activated.

    Returns:
        The final bundle folder.
    """
    parent = models_dir / f"project-{project_id}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(parent)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))
    except OSError as exc:
        raise storage_error(exc, "the model bundle") from exc
    try:
        manifest = fill(tmp)
        manifest = {"format": BUNDLE_FORMAT, "kind": kind, "project_id": project_id,
                    "created_at": utcnow().isoformat(), **manifest}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        final = parent / f"{utcnow().strftime('%Y%m%dT%H%M%S')}-{kind}-{os.getpid()}-{tmp.name[-6:]}"
        os.replace(tmp, final)
        return final
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise storage_error(exc, "the model bundle") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def flat_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """Training statistics flattened for a version's config (``bi.seconds`` ...), scalars only."""
    out: dict[str, Any] = {}
    for k, v in stats.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items() if isinstance(vv, int | float | str | bool)})
        elif isinstance(v, int | float | str | bool):
            out[k] = v
    return out


def sweep_stale(parent: Path, older_than_s: float = STALE_TMP_S) -> list[Path]:
    """Delete temporary bundle folders left by writers killed mid-write (kill -9, power loss)."""
    import time

    gone = []
    for tmp in parent.glob(".tmp-*"):
        if tmp.is_dir() and time.time() - tmp.stat().st_mtime > older_than_s:
            shutil.rmtree(tmp, ignore_errors=True)
            gone.append(tmp)
    return gone


def read_manifest(bundle: Path) -> dict[str, Any]:
    """Read and check a bundle's manifest.

    Raises:
        ModelError: missing folder or manifest, or a bundle format this code cannot read.
    """
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise ModelError(f"{bundle} is not a model bundle (no {MANIFEST}); it may be incomplete or deleted.")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != BUNDLE_FORMAT:
        raise ModelError(
            f"The bundle {bundle} has format {manifest.get('format')!r}; this version of the tool reads "
            f"format {BUNDLE_FORMAT}. Retrain the model or use the tool version that wrote it."
        )
    return manifest


def register_version(db: Database, project_id: int, kind: str, bundle: Path, config: dict[str, Any],
                     metrics: dict[str, Any], taxonomy_version_id: int | None, job_id: int | None = None,
                     activate: bool = False, user_id: int | None = None, owner: JobOwner | None = None) -> int:
    """Record a finished bundle as the project's next model version (and optionally activate it).

    ``owner``: the job writing it, which must still be running under its worker (checked in the same transaction):
    a job reaped as orphaned never registers or activates a version.

    Raises:
        JobLost: ``owner`` no longer runs the job.
    """
    read_manifest(bundle)
    with db.session() as s:
        if owner is not None:
            owner.hold(s)
            job_id = owner.job_id
        number = (s.scalar(select(func.max(ModelVersion.number)).where(ModelVersion.project_id == project_id)) or 0) + 1
        version = ModelVersion(project_id=project_id, number=number, kind=kind, path=str(bundle), config=config,
                               metrics=metrics, taxonomy_version_id=taxonomy_version_id, job_id=job_id)
        s.add(version)
        s.flush()
        log_event(s, "model_version_created", project_id, user_id, version=number, model_kind=kind)
        if activate:
            s.get(Project, project_id).active_model_version_id = version.id
            log_event(s, "model_activated", project_id, user_id, version=number)
        return version.id


def activate(db: Database, project_id: int, version_id: int, user_id: int | None = None) -> None:
    """Make a version the one that serves predictions (also how a roll-back is done)."""
    with db.session() as s:
        check_admin(s, user_id)
        version = s.get(ModelVersion, version_id)
        if version is None or version.project_id != project_id:
            raise NotFound(f"Model version {version_id} does not belong to this project.")
        if version.kind not in SERVING_KINDS:
            raise XmtcError(f"v{version.number} is a {version.kind} model, not a label ranker: it cannot serve predictions.")
        read_manifest(Path(version.path))
        project = s.get(Project, project_id)
        previous = project.active_model_version_id
        project.active_model_version_id = version.id
        log_event(s, "model_activated", project_id, user_id, version=version.number, previous_id=previous)


def latest_version(db: Database, project_id: int, kind: str) -> VersionView | None:
    """The newest version of a kind (e.g. the latest domain-adapted encoder)."""
    return next((v for v in list_versions(db, project_id) if v.kind == kind), None)


def list_versions(db: Database, project_id: int) -> list[VersionView]:
    with db.session() as s:
        active = s.scalar(select(Project.active_model_version_id).where(Project.id == project_id))
        rows = s.scalars(select(ModelVersion).where(ModelVersion.project_id == project_id)
                         .order_by(ModelVersion.number.desc()))
        return [VersionView(v.id, v.number, v.kind, v.path, dict(v.config), dict(v.metrics), v.created_at,
                            v.id == active) for v in rows]


def active_version(db: Database, project_id: int) -> VersionView | None:
    return next((v for v in list_versions(db, project_id) if v.active), None)


def require_active(db: Database, project_id: int) -> VersionView:
    version = active_version(db, project_id)
    if version is None:
        raise XmtcError("The project has no active model yet: build the label index or train a model first.")
    return version
