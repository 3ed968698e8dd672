"""Page scaffolding: database handle, sign-in guard, project picker, job panel."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from core.accounts import auth
from core.config import Settings
from core.errors import XmtcError
from core.jobs import JobView, enqueue, eta_text, list_jobs, load_handlers, reap_orphans, request_cancel
from core.worker import ensure_worker
from storage.db import Database
from storage.migrate import SchemaBehind
from storage.models import ROLE_ADMIN, User
from ui.widgets import plain

load_handlers()  # job kinds and their titles


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in user, re-read from the database on every script run."""

    id: int
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == ROLE_ADMIN


@st.cache_resource(show_spinner=False)
def _database(url: str) -> Database:
    db = Database(url)
    db.prepare()  # a new database is created; one whose schema is behind is refused with the upgrade command
    return db


def settings() -> Settings:
    return Settings.from_env()


def database() -> Database:
    """The app's database; a data folder that cannot be used stops the page with what to do."""
    url = settings().db_url
    try:
        return _database(url)
    except SchemaBehind as exc:
        st.error(plain(str(exc)))
        st.stop()
    except (OSError, SQLAlchemyError) as exc:
        st.error(plain(f"Cannot open the database {url}: {getattr(exc, 'orig', None) or exc}. Set XMTC_DATA_DIR to a "
                       "writable folder (or XMTC_DATABASE_URL to a reachable database) and reload."))
        st.stop()


SESSION_COOKIE = "xmtc_session"


def _cookie_sync() -> None:
    """Write (after sign-in) or delete (after sign-out) the session cookie in the browser.

    The cookie is set by extra-streamlit-components' cookie manager (SameSite=Strict, path /, the session's
    expiry); its component answers True once the browser has done it, and is drawn until then. It is read back on
    a reload from the request itself (``st.context.cookies``). The token is random and only its hash is stored;
    never in the URL.
    """
    pending = st.session_state.get("cookie_pending")
    if not pending:
        return
    from extra_streamlit_components import CookieManager

    with st.sidebar:
        manager = CookieManager(key="xmtc_cookies")
        if pending[0] == "set":
            _, token, expires = pending
            done = manager.cookie_manager(method="set", cookie=SESSION_COOKIE, value=token, key=f"cookie_set_{token[:8]}",
                                          options={"path": "/", "expires": expires, "sameSite": "strict"}, default=False)
        else:
            done = manager.cookie_manager(method="delete", cookie=SESSION_COOKIE, key=f"cookie_delete_{pending[1]}",
                                          default=False)
    if done:
        st.session_state.pop("cookie_pending", None)


def current_user(db: Database) -> CurrentUser | None:
    """The user of this browser session: from the session token (this tab's, or the cookie's after a reload),
    checked against the database on every run (a revoked or expired session signs out)."""
    _cookie_sync()
    token = st.session_state.get("session_token")
    if token is None and not st.session_state.get("signed_out"):
        cookie = st.context.cookies.get(SESSION_COOKIE)
        token = cookie if isinstance(cookie, str) else None
    user = auth.session_user(db, token) if token else None
    if user is None:
        for key in ("session_token", "user_id"):
            st.session_state.pop(key, None)
        return None
    st.session_state["session_token"] = token
    st.session_state["user_id"] = user.id
    return CurrentUser(user.id, user.username, user.role)


def sign_in(db: Database, user_id: int) -> None:
    """Open a server-side session for ``user_id`` in this tab; its cookie is written on the next run."""
    token, expires = auth.start_session(db, user_id)
    st.session_state["session_token"] = token
    st.session_state["user_id"] = user_id
    st.session_state["cookie_pending"] = ("set", token, expires.isoformat())
    st.session_state.pop("signed_out", None)


def sign_out(db: Database) -> None:
    auth.end_session(db, st.session_state.get("session_token"))
    for key in ("session_token", "user_id", "project_id"):
        st.session_state.pop(key, None)
    st.session_state["signed_out"] = True  # the next run goes to the sign-in page (the old cookie is revoked)
    st.session_state["cookie_pending"] = ("delete", uuid.uuid4().hex[:8])


def visible_projects(db: Database, user: CurrentUser) -> list[tuple[int, str]]:
    """(id, name) of the projects the user may see."""
    with db.session() as s:
        return [(p.id, p.name) for p in auth.visible_projects(s, s.get(User, user.id))]


def api_tokens_panel(db: Database, user: CurrentUser) -> None:
    """An admin's API tokens: create one scoped to projects (shown once), list them, revoke one."""
    from core.accounts import tokens

    names = dict(visible_projects(db, user))
    st.caption("`xmtc serve` (or `make api`) serves label suggestions over HTTP to other systems; a token reaches only "
               "the projects chosen here and is stored hashed, so copy it when it is shown.")
    with st.form("new_token"):
        c = st.columns([2, 3, 1])
        name = c[0].text_input("Used by (e.g. the catalogue)", key="token_name")
        scope = c[1].multiselect("Projects it reaches", list(names), format_func=names.get, key="token_scope")
        days = c[2].number_input("Expires after days (0: never)", 0, 3650, 365, key="token_days")
        if st.form_submit_button("Create token"):
            made = run_action(lambda: tokens.create_token(db, name, scope, user.id, days or None))
            if made:
                st.success("Token created. Copy it now: it is not shown again.")
                st.code(made[0], language=None)
    for t in tokens.list_tokens(db):
        c = st.columns([1, 3, 3, 2, 1])
        c[0].write(f"#{t.id}")
        c[1].text(t.name)
        c[2].text(", ".join(names.get(p, str(p)) for p in t.project_ids))
        c[3].write("revoked" if t.revoked else f"expires {t.expires_at:%Y-%m-%d}" if t.expires_at else "no expiry")
        if not t.revoked and c[4].button("Revoke", key=f"revoke_token_{t.id}"):
            run_action(lambda t=t: tokens.revoke_token(db, t.id, user.id), f"Token #{t.id} revoked.")


def sidebar(db: Database, user: CurrentUser) -> int | None:
    """Signed-in user, sign-out and the project picker; returns the chosen project id."""
    with st.sidebar:
        st.caption(f"Signed in as **{plain(user.username)}** ({user.role})")
        st.button("Sign out", on_click=sign_out, args=(db,), key="sign_out")
        projects = visible_projects(db, user)
        if not projects:
            st.session_state.pop("project_id", None)
            return None
        ids = [p for p, _ in projects]
        names = dict(projects)
        current = st.session_state.get("project_id")
        index = ids.index(current) if current in ids else 0
        chosen = st.selectbox("Project", ids, index=index, format_func=lambda i: names[i], key="project_picker")
        st.session_state["project_id"] = chosen
        return chosen


def page_setup(title: str, icon: str = "") -> tuple[Database, CurrentUser, int]:
    """Common start of every page: require sign-in and a project, show the sidebar."""
    st.set_page_config(page_title=f"{title} - XMTC", page_icon=icon or None, layout="wide")
    db = database()
    user = current_user(db)
    if user is None and st.session_state.pop("signed_out", False):
        st.switch_page("overview.py")
    if user is None:
        st.title(title)
        st.warning("You are not signed in. Sign in on the start page first.")
        st.markdown("[Go to the sign-in page](/)")
        st.stop()
    project_id = sidebar(db, user)
    if project_id is not None:
        try:  # the picker offers only the user's projects; checked again here, on every run
            auth.require_project_access(db, user, project_id)
        except XmtcError as exc:
            st.error(plain(exc))
            st.stop()
    keep_worker_alive(db)
    st.title(title)
    if project_id is None:
        st.info("No project yet: an admin creates one (or the demo project) on the start page.")
        st.markdown("[Go to the start page](/)")
        st.stop()
    return db, user, project_id


def keep_worker_alive(db: Database) -> None:
    """Fail or re-queue jobs whose worker died, and start a local worker when none is alive."""
    try:
        reap_orphans(db, settings().worker_heartbeat_timeout_s)
        ensure_worker(db, settings())
    except OSError as exc:  # an unwritable data folder must not break the page
        st.warning(f"Could not start the background worker: {exc}")


def run_action(fn: Callable[[], Any], success: str | None = None) -> Any:
    """Run a user action; domain errors become a message, never a traceback."""
    try:
        result = fn()
    except XmtcError as exc:
        st.error(plain(exc))
        return None
    if success:
        st.success(plain(success))
    return result


def submit_job(db: Database, user: CurrentUser, kind: str, project_id: int | None,
               params: dict[str, Any] | None = None, max_attempts: int = 1) -> int | None:
    """Queue a job for an admin (checked here, server-side) and make sure a worker will run it."""
    if not user.is_admin:
        st.error("Only an admin can start this.")
        return None
    job_id = enqueue(db, kind, project_id, params, user_id=user.id, max_attempts=max_attempts)
    keep_worker_alive(db)
    st.toast(f"Job {job_id} queued")
    return job_id


UPLOAD_LIMIT_MB = 200
UPLOAD_TYPES = {"taxonomy": ["rdf", "xml", "ttl", "json", "jsonld", "tsv", "csv", "gz"],
                "corpus": ["csv", "tsv", "jsonl", "txt", "gz"]}


def save_upload(uploaded: Any, kind: str) -> Path:
    """Store an uploaded file under the data folder and return its path.

    Checked here, on the server (the browser's file filter is only a convenience): the size limit, and that the
    name ends in a type the importers read (``.gz`` of such a file included).

    Raises:
        XmtcError: too large, empty, or not a ``kind`` ("taxonomy" or "corpus") file.
    """
    allowed = UPLOAD_TYPES[kind]
    name = Path(uploaded.name).name
    inner = name[:-3] if name.lower().endswith(".gz") else name
    if Path(inner).suffix.lower().lstrip(".") not in allowed or inner.lower().endswith(".gz"):
        raise XmtcError(f"{name} is not a {kind} file: use one of {', '.join('.' + t for t in allowed if t != 'gz')} "
                        "(optionally gzipped).")
    if uploaded.size > UPLOAD_LIMIT_MB * 1024 * 1024:
        raise XmtcError(f"{name} is larger than {UPLOAD_LIMIT_MB:g} MB; split it or raise the limit.")
    if uploaded.size == 0:
        raise XmtcError(f"{name} is empty.")
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in Path(uploaded.name).name)[-120:]
    folder = settings().uploads_dir  # in the store: a worker on another machine reads it
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex[:8]}-{safe}"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(uploaded.getvalue())
    tmp.replace(path)  # whole or absent: a worker never reads half an upload
    return path


def job_summary(result: dict[str, Any]) -> str:
    """One line about what a finished job produced (an import report, or test metrics per model)."""
    if result.get("report"):
        return str(result["report"])
    parts = [f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in out["metrics"].items() if k != "test_docs")
             + (f" on {out['metrics']['test_docs']:,} test documents" if "test_docs" in out["metrics"] else "")
             for name, out in result.items() if isinstance(out, dict) and out.get("metrics")]
    if result.get("warning"):
        parts.append(str(result["warning"]))
    return "; ".join(parts)


def _render_jobs(db: Database, jobs: list[JobView], user: CurrentUser) -> bool:
    if not jobs:
        st.caption("No jobs yet.")
        return False
    for job in jobs:
        cols = st.columns([3, 5, 1])
        cols[0].markdown(f"**#{job.id} {job.title}**  \n`{job.status}` · attempt {job.attempts}")
        if job.status == "failed":
            cols[1].error(plain(job.error or job.message))
        elif job.status == "done" and job_summary(job.result):
            cols[1].progress(1.0, text=plain(f"done: {job_summary(job.result)}"))
        else:
            eta = job.eta_s()
            text = (job.message or job.status) + (f" · {eta_text(eta)} for the whole job" if eta is not None else "")
            cols[1].progress(job.progress, text=plain(text))
        if job.active and user.is_admin and not job.cancel_requested:
            cols[2].button("Cancel", key=f"cancel_job_{job.id}", on_click=request_cancel, args=(db, job.id, user.id))
    return any(j.active for j in jobs)


def refresh_when(ready: Callable[[], bool], every_s: float = 3.0) -> None:
    """Poll ``ready`` every few seconds in a fragment and re-run the whole page once it is true (e.g. a question
    has arrived), so a page that waits never needs a reload."""

    @st.fragment(run_every=every_s)
    def poll() -> None:
        if ready():
            st.rerun()

    poll()


def job_panel(db: Database, project_id: int | None, user: CurrentUser, kinds: tuple[str, ...] = (),
              limit: int = 8) -> None:
    """Jobs with progress bars; refreshes itself every 2 s while any is queued or running."""

    @st.fragment(run_every=2.0)
    def live() -> None:
        if not _render_jobs(db, list_jobs(db, project_id, limit=limit, kinds=kinds), user):
            st.rerun()  # the last job finished: refresh the whole page to show what it produced

    jobs = list_jobs(db, project_id, limit=limit, kinds=kinds)
    if any(j.active for j in jobs):
        live()
    else:
        _render_jobs(db, jobs, user)

