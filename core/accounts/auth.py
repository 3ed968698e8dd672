"""Accounts, sign-in (Argon2 hashes, rate-limited) and role checks."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.accounts.events import log_event
from core.errors import AuthError, NotFound, PermissionDenied, XmtcError
from storage.db import Database
from storage.models import ROLE_ADMIN, ROLES, Membership, Project, User, UserSession, utcnow

_hasher = PasswordHasher()
MAX_FAILED_LOGINS = 5
LOCKOUT = dt.timedelta(seconds=60)
MIN_PASSWORD_LENGTH = 8
SESSION_LIFETIME = dt.timedelta(days=14)


def has_users(db: Database) -> bool:
    with db.session() as s:
        return bool(s.scalar(select(func.count()).select_from(User)))


def create_user(db: Database, username: str, password: str, role: str = "annotator",
                by_user_id: int | None = None) -> User:
    """Create an account with an Argon2id password hash.

    Raises:
        AuthError: empty or taken username, short password, or unknown role.
    """
    username = username.strip()
    if not username:
        raise AuthError("A username is required.")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"The password needs at least {MIN_PASSWORD_LENGTH} characters.")
    if role not in ROLES:
        raise AuthError(f"Unknown role {role!r}; use one of {ROLES}.")
    with db.session() as s:
        check_admin(s, by_user_id)
        if s.scalar(select(User).where(User.username == username)):
            raise AuthError(f"The username {username!r} is taken.")
        user = User(username=username, password_hash=_hasher.hash(password), role=role)
        s.add(user)
        s.flush()
        log_event(s, "user_created", None, by_user_id, username=username, role=role)
    return user


def authenticate(db: Database, username: str, password: str, now: dt.datetime | None = None) -> User:
    """Check a password; after ``MAX_FAILED_LOGINS`` failures the account is locked for ``LOCKOUT``.

    Raises:
        AuthError: unknown user, wrong password or locked account (one message for the first two,
            so the form does not reveal which usernames exist).
    """
    now = now or utcnow()
    with db.session() as s:
        user = s.scalar(select(User).where(User.username == username.strip()))
        if user is None:
            _hasher.hash(password)  # spend the same time as a real check
            raise AuthError("Wrong username or password.")
        locked = user.locked_until
        if locked is not None and locked > now:
            raise AuthError(f"Too many failed sign-ins: try again in {int((locked - now).total_seconds()) + 1} s.")
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            user.failed_logins += 1
            if user.failed_logins >= MAX_FAILED_LOGINS:
                user.locked_until = now + LOCKOUT
                user.failed_logins = 0
            log_event(s, "sign_in_failed", None, user.id)
            failed = True
        else:
            failed = False
            user.failed_logins = 0
            user.locked_until = None
            if _hasher.check_needs_rehash(user.password_hash):
                user.password_hash = _hasher.hash(password)
            log_event(s, "signed_in", None, user.id)
    if failed:
        raise AuthError("Wrong username or password.")
    return user


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db: Database, user_id: int, now: dt.datetime | None = None,
                  lifetime: dt.timedelta = SESSION_LIFETIME) -> tuple[str, dt.datetime]:
    """Open a sign-in session and return its token (for the browser's cookie; only its SHA-256 is stored) and
    when it expires."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    with db.session() as s:
        s.add(UserSession(user_id=user_id, token_hash=hash_token(token), created_at=now, expires_at=now + lifetime))
    return token, now + lifetime


def session_user(db: Database, token: str | None, now: dt.datetime | None = None) -> User | None:
    """The user a session token signs in: None for an unknown, expired or revoked token."""
    if not token or not isinstance(token, str):
        return None
    now = now or utcnow()
    with db.session() as s:
        row = s.scalar(select(UserSession).where(UserSession.token_hash == hash_token(token)))
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            return None
        return s.get(User, row.user_id)


def end_session(db: Database, token: str | None) -> None:
    """Revoke one session (sign-out): its token no longer signs anyone in, whatever the browser keeps."""
    if token:
        with db.session() as s:
            s.execute(update(UserSession).where(UserSession.token_hash == hash_token(token),
                                                UserSession.revoked_at.is_(None)).values(revoked_at=utcnow()))


def change_password(db: Database, user_id: int, old: str, new: str) -> None:
    """Change a password after checking the old one; every session of the user is revoked (sign in again).

    Raises:
        AuthError: wrong old password or a short new one.
    """
    if len(new) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"The password needs at least {MIN_PASSWORD_LENGTH} characters.")
    with db.session() as s:
        user = s.get(User, user_id)
        try:
            _hasher.verify(user.password_hash, old)
        except (VerificationError, InvalidHashError) as exc:
            raise AuthError("The current password is wrong.") from exc
        user.password_hash = _hasher.hash(new)
        s.execute(update(UserSession).where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
                  .values(revoked_at=utcnow()))
        log_event(s, "password_changed", None, user_id)


def check_admin(session: Session, user_id: int | None) -> None:
    """An action on behalf of a signed-in user needs the admin role; ``None`` is the system itself (a job, a script).

    Raises:
        PermissionDenied: the user is not an admin (or no longer exists).
    """
    if user_id is None:
        return
    user = session.get(User, user_id)
    if user is None or user.role != ROLE_ADMIN:
        raise PermissionDenied("Only an admin can do this; ask an admin of the project.")


def admin_project(session: Session, user_id: int | None, project_id: int, missing: type[XmtcError] = NotFound) -> Project:
    """The project an admin action is about: the user must be an admin (``None``: the system) and the project must
    exist.

    Raises:
        PermissionDenied: not an admin.
        NotFound (or ``missing``): no such project.
    """
    check_admin(session, user_id)
    project = session.get(Project, project_id)
    if project is None:
        raise missing(f"Project {project_id} does not exist.")
    return project


def require_admin(user: User) -> None:
    """Raise :class:`PermissionDenied` unless ``user`` is an admin (checked server-side)."""
    if user.role != ROLE_ADMIN:
        raise PermissionDenied("Only an admin can do this; ask an admin of the project.")


def visible_projects(session: Session, user: User) -> list[Project]:
    """Projects the user may see: all for an admin, their memberships for an annotator."""
    query = select(Project).order_by(Project.name)
    if user.role != ROLE_ADMIN:
        query = query.join(Membership, Membership.project_id == Project.id).where(Membership.user_id == user.id)
    return list(session.scalars(query))


def require_project_access(db: Database, user: User, project_id: int) -> None:
    """Raise :class:`PermissionDenied` if the user may not see the project."""
    with db.session() as s:
        if user.role == ROLE_ADMIN and s.get(Project, project_id) is not None:
            return
        member = s.scalar(select(Membership).where(Membership.project_id == project_id,
                                                  Membership.user_id == user.id))
    if member is None:
        raise PermissionDenied("You are not a member of this project.")
