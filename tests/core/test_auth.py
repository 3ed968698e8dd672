from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from core import auth
from core.errors import AuthError, PermissionDenied
from core.projects import add_member, create_project
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
