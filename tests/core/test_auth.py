from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from core.accounts import auth
from core.accounts.projects import add_member, create_project
from core.errors import AuthError, PermissionDenied
from storage.models import User


def test_passwords_are_stored_as_argon2id_hashes(db):
    auth.create_user(db, "ada", "correct horse", "admin")
    with db.session() as s:
        stored = s.scalar(select(User.password_hash))
    assert stored.startswith("$argon2id$") and "correct horse" not in stored


def test_sign_in_checks_the_password(db):
    auth.create_user(db, "ada", "correct horse", "admin")
    assert auth.authenticate(db, "ada", "correct horse").username == "ada"
    with pytest.raises(AuthError, match="Wrong username or password"):
        auth.authenticate(db, "ada", "wrong horse")
    with pytest.raises(AuthError, match="Wrong username or password"):
        auth.authenticate(db, "nobody", "correct horse")


def test_repeated_failures_lock_the_account_for_a_while(db):
    auth.create_user(db, "ada", "correct horse")
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for _ in range(auth.MAX_FAILED_LOGINS):
        with pytest.raises(AuthError, match="Wrong"):
            auth.authenticate(db, "ada", "bad password", now=now)
    with pytest.raises(AuthError, match="Too many failed sign-ins"):
        auth.authenticate(db, "ada", "correct horse", now=now)
    later = now + auth.LOCKOUT + dt.timedelta(seconds=1)
    assert auth.authenticate(db, "ada", "correct horse", now=later).username == "ada"


def test_short_passwords_duplicate_names_and_bad_roles_are_refused(db):
    with pytest.raises(AuthError, match="at least 8"):
        auth.create_user(db, "ada", "short")
    auth.create_user(db, "ada", "long enough")
    with pytest.raises(AuthError, match="taken"):
        auth.create_user(db, "ada", "long enough")
    with pytest.raises(AuthError, match="Unknown role"):
        auth.create_user(db, "bob", "long enough", "superuser")


def test_annotators_see_only_their_projects_and_are_not_admins(db):
    admin = auth.create_user(db, "ada", "long enough", "admin")
    annotator = auth.create_user(db, "sam", "long enough", "annotator")
    mine = create_project(db, "mine", user_id=admin.id)
    create_project(db, "other", user_id=admin.id)
    add_member(db, mine, "sam")
    with db.session() as s:
        assert [p.name for p in auth.visible_projects(s, s.get(User, annotator.id))] == ["mine"]
        assert [p.name for p in auth.visible_projects(s, s.get(User, admin.id))] == ["mine", "other"]
    with pytest.raises(PermissionDenied):
        auth.require_admin(annotator)
    auth.require_admin(admin)


def test_a_session_token_signs_in_until_it_expires_or_is_revoked(db):
    from core.accounts.auth import authenticate, change_password, create_user, end_session, session_user, start_session
    from storage.models import UserSession, utcnow

    user = create_user(db, "sam", "long enough")
    token, expires = start_session(db, user.id)
    assert session_user(db, token).username == "sam"
    with db.session() as s:  # only the hash is stored
        assert token not in {row.token_hash for row in s.query(UserSession)}
    assert session_user(db, token, now=expires + dt.timedelta(seconds=1)) is None
    assert session_user(db, token + "x") is None and session_user(db, None) is None
    other, _ = start_session(db, user.id)
    end_session(db, token)  # sign-out ends this session only
    assert session_user(db, token) is None and session_user(db, other).id == user.id
    with pytest.raises(AuthError, match="current password is wrong"):
        change_password(db, user.id, "not it at all", "another long one")
    assert session_user(db, other) is not None
    change_password(db, user.id, "long enough", "another long one")  # every session ends
    assert session_user(db, other) is None
    assert authenticate(db, "sam", "another long one", now=utcnow()).id == user.id
