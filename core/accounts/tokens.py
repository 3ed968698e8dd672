"""Bearer tokens for the REST API: created by an admin, stored hashed, scoped to projects, revocable."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update

from core.accounts.auth import check_admin, hash_token
from core.accounts.events import log_event
from core.errors import NotFound, XmtcError
from storage.db import Database
from storage.models import ApiToken, ApiTokenProject, Project, utcnow

TOKEN_PREFIX = "xmtc_"  # recognisable in a leaked config file or log


@dataclass(frozen=True)
class TokenView:
    id: int
    name: str
    project_ids: list[int]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked: bool


def create_token(db: Database, name: str, project_ids: Sequence[int], user_id: int | None,
                 days: float | None = None, now: dt.datetime | None = None) -> tuple[str, int]:
    """A new token for ``project_ids`` (``user_id`` must be an admin; ``None``: the system, e.g. the command line
    on the server). Returns the token, shown once (only its SHA-256 is stored), and its id.

    Raises:
        PermissionDenied: not an admin.
        NotFound: a project does not exist.
        XmtcError: no name or no project.
    """
    name = name.strip()
    if not name or len(name) > 100:
        raise XmtcError("A token needs a name (up to 100 characters) saying which system uses it.")
    wanted = sorted(set(project_ids))
    if not wanted:
        raise XmtcError("A token must be scoped to at least one project.")
    now = now or utcnow()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.session() as s:
        check_admin(s, user_id)
        known = set(s.scalars(select(Project.id).where(Project.id.in_(wanted))))
        if missing := [p for p in wanted if p not in known]:
            raise NotFound(f"Project(s) {missing} do not exist.")
        row = ApiToken(name=name, token_hash=hash_token(token), created_by=user_id, created_at=now,
                       expires_at=now + dt.timedelta(days=days) if days else None)
        s.add(row)
        s.flush()
        s.add_all([ApiTokenProject(token_id=row.id, project_id=p) for p in wanted])
        log_event(s, "api_token_created", None, user_id, token_id=row.id, name=name, projects=wanted)
        return token, row.id


def token_projects(db: Database, token: str | None, now: dt.datetime | None = None) -> set[int] | None:
    """The projects a bearer token reaches; None for an unknown, expired or revoked token."""
    if not token:
        return None
    now = now or utcnow()
    with db.session() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
            return None
        return set(s.scalars(select(ApiTokenProject.project_id).where(ApiTokenProject.token_id == row.id)))


def revoke_token(db: Database, token_id: int, user_id: int | None) -> None:
    """Revoke a token at once (every API process checks the database on each request).

    Raises:
        PermissionDenied: not an admin. NotFound: no such token.
    """
    with db.session() as s:
        check_admin(s, user_id)
        if s.get(ApiToken, token_id) is None:
            raise NotFound(f"API token {token_id} does not exist.")
        s.execute(update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
                  .values(revoked_at=utcnow()))
        log_event(s, "api_token_revoked", None, user_id, token_id=token_id)


def list_tokens(db: Database) -> list[TokenView]:
    with db.session() as s:
        scopes: dict[int, list[int]] = {}
        for t, p in s.execute(select(ApiTokenProject.token_id, ApiTokenProject.project_id)
                              .order_by(ApiTokenProject.project_id)):
            scopes.setdefault(t, []).append(p)
        return [TokenView(t.id, t.name, scopes.get(t.id, []), t.created_at, t.expires_at, t.revoked_at is not None)
                for t in s.scalars(select(ApiToken).order_by(ApiToken.id))]
