"""API bearer tokens: scoped to projects, stored hashed, expiring, revocable, created by an admin only."""

from __future__ import annotations

import datetime as dt

import pytest

from core.accounts.auth import create_user
from core.accounts.projects import create_project
from core.accounts.tokens import TOKEN_PREFIX, create_token, list_tokens, revoke_token, token_projects
from core.errors import NotFound, PermissionDenied, XmtcError

BACKENDS = ("sqlite", "postgresql")


def test_a_token_reaches_exactly_its_projects_until_it_expires_or_is_revoked(db):
    a, b, c = (create_project(db, n) for n in "abc")
    admin = create_user(db, "lead", "long enough", "admin").id
    now = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    token, tid = create_token(db, "catalogue", [a, b, a], admin, days=1, now=now)
    assert token.startswith(TOKEN_PREFIX)
    assert token_projects(db, token, now) == {a, b} and c not in token_projects(db, token, now)
    assert token_projects(db, token, now + dt.timedelta(hours=23)) == {a, b}
    assert token_projects(db, token, now + dt.timedelta(days=1, seconds=1)) is None  # expired
    forever, fid = create_token(db, "indexer", [c], admin)
    assert token_projects(db, forever) == {c}
    assert token_projects(db, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert token_projects(db, "") is None
    revoke_token(db, fid, admin)
    assert token_projects(db, forever) is None
    views = {t.id: t for t in list_tokens(db)}
    assert views[tid].project_ids == sorted([a, b]) and not views[tid].revoked and views[fid].revoked


def test_token_creation_refuses_non_admins_unknown_projects_and_empty_scopes(db):
    pid = create_project(db, "a")
    sme = create_user(db, "sme", "long enough", "annotator").id
    with pytest.raises(PermissionDenied):
        create_token(db, "mine", [pid], sme)
    with pytest.raises(NotFound, match="999"):
        create_token(db, "x", [pid, 999], None)
    with pytest.raises(XmtcError, match="at least one project"):
        create_token(db, "x", [], None)
    with pytest.raises(XmtcError, match="needs a name"):
        create_token(db, "  ", [pid], None)
    with pytest.raises(PermissionDenied):
        revoke_token(db, 1, sme)
    assert list_tokens(db) == []
