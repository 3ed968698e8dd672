"""The REST API other systems call (FastAPI, served by uvicorn: ``xmtc serve`` or ``make api``).

- ``GET /v1/projects``: the projects the bearer token reaches, with their active model version.
- ``POST /v1/projects/{id}/suggest``: top-k labels (with a score threshold) for one or many documents, from the
  project's active model version.
- ``GET /v1/projects/{id}/labels/{label}``: a label by id or external id (URI, notation), with its place in the
  taxonomy.
- ``GET /v1/health``: for a load balancer (no token). OpenAPI: ``/openapi.json``, browsable at ``/docs``.

Tokens are created by an admin (``xmtc tokens create``), stored hashed and scoped to projects; every request checks
its token in the database, so a revocation holds at once in every process. A process keeps nothing but a cache of
loaded models (reloaded when a project's active version changes), so several can run behind a load balancer.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import func, select

from core.accounts.tokens import token_projects
from core.config import Settings
from core.data.catalog import find_label, label_detail
from core.errors import XmtcError
from core.model.labels import LabelRanker, Prediction, shown
from core.model.loading import load_ranker
from core.model.versions import VersionView, active_version
from storage.db import Database
from storage.models import Label, Project

MAX_TEXT_CHARS = 20_000
MAX_DOCUMENTS = 64
MAX_K = 100
# 64 documents of 20,000 characters, each escaped as \uXXXX at worst, fit; anything larger is refused unread.
MAX_BODY_BYTES = 8 * 1024 * 1024
SCORE_DIGITS = 6
API_VERSION = "1"
_bearer = HTTPBearer(auto_error=False)
log = logging.getLogger("xmtc.api")


# --- request and response bodies ----------------------------------------------------------------------------------


def _not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("the text is empty: send the document's title and abstract")
    return value


class DocumentIn(BaseModel):
    id: str | None = Field(None, max_length=255, description="The caller's id, echoed back")
    text: str = Field(..., max_length=MAX_TEXT_CHARS, description="Title and abstract (or any text) to label")

    _text = field_validator("text")(_not_blank)


class SuggestRequest(BaseModel):
    """One document (``text``) or many (``documents``)."""

    documents: list[DocumentIn] = Field(default_factory=list, max_length=MAX_DOCUMENTS)
    text: str | None = Field(None, max_length=MAX_TEXT_CHARS, description="Shortcut for one document")
    k: int = Field(10, ge=1, le=MAX_K, description="Labels per document")
    threshold: Annotated[float, Field(allow_inf_nan=False)] | None = Field(
        None, description="Only labels whose returned score is at least this (default: no threshold)")

    _text = field_validator("text")(_not_blank)

    @model_validator(mode="after")
    def one_or_many(self) -> SuggestRequest:
        if self.text is not None:
            if self.documents:
                raise ValueError("send either text (one document) or documents (many), not both")
            self.documents = [DocumentIn(text=self.text)]
            self.text = None
        if not self.documents:
            raise ValueError("no document: send text, or documents with at least one {\"text\": ...}")
        return self


class Suggestion(BaseModel):
    label_id: int
    uri: str = Field(description="The label's external id in the taxonomy (URI or notation)")
    label: str
    score: float


class DocumentSuggestions(BaseModel):
    id: str | None
    suggestions: list[Suggestion]


class ModelOut(BaseModel):
    id: int
    name: str
    kind: str


class SuggestResponse(BaseModel):
    project_id: int
    model: ModelOut
    results: list[DocumentSuggestions]


class ProjectOut(BaseModel):
    id: int
    name: str
    description: str
    labels: int
    model: ModelOut | None


class LabelOut(BaseModel):
    id: int
    uri: str
    label: str
    alt_labels: list[str]
    description: str
    deprecated: bool
    replaced_by: str | None
    paths: list[list[str]] = Field(description="Root-to-label paths (a poly-hierarchy has several)")
    narrower: list[str]
    documents: int


class ErrorOut(BaseModel):
    error: str


# --- the model cache and the batcher --------------------------------------------------------------------------------


@dataclass
class _Request:
    texts: list[str]
    k: int
    done: Future = field(default_factory=Future)


class Batcher:
    """Gathers the requests that reach one model within ``window_s`` of each other into one ``rank()`` call (at
    most ``max_docs`` documents), then answers each with its own documents and its own ``k``: a ranking's top-3
    is the first 3 of its top-10, so the batch ranks once with the largest ``k``.

    One thread per model runs the batches: a forward pass over many documents costs far less per document than
    one pass per request, and under load the next batch gathers while this one runs.
    """

    def __init__(self, ranker: LabelRanker, window_s: float = 0.005, max_docs: int = 128) -> None:
        self.ranker, self.window_s, self.max_docs = ranker, window_s, max_docs
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self.batches = 0  # rank() calls made (for tests and the bench)
        self._thread = threading.Thread(target=self._run, name="xmtc-batcher", daemon=True)
        self._thread.start()

    def rank(self, texts: list[str], k: int) -> list[list[Prediction]]:
        request = _Request(list(texts), k)
        self._queue.put(request)
        return request.done.result()

    def close(self) -> None:
        self._queue.put(None)

    def _gather(self, first: _Request) -> tuple[list[_Request], bool]:
        batch, docs, deadline = [first], len(first.texts), time.monotonic() + self.window_s
        while docs < self.max_docs:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
            docs += len(item.texts)
        return batch, False

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            batch, closing = self._gather(first)
            self._answer(batch)
            if closing:
                return

    def _answer(self, batch: list[_Request]) -> None:
        self.batches += 1
        try:
            ranked = self.ranker.rank([t for r in batch for t in r.texts], k=max(r.k for r in batch))
        except Exception as exc:  # handed to the requests' own threads
            if len(batch) == 1:
                batch[0].done.set_exception(exc)
            else:  # one request's failure must not fail the others: rank each alone
                for r in batch:
                    self._answer([r])
            return
        start = 0
        for r in batch:
            r.done.set_result([preds[:r.k] for preds in ranked[start:start + len(r.texts)]])
            start += len(r.texts)


@dataclass
class _Loaded:
    version_id: int
    ranker: LabelRanker
    lock: threading.Lock
    batcher: Batcher | None = None

    def rank(self, texts: list[str], k: int) -> list[list[Prediction]]:
        if self.batcher is not None:
            return self.batcher.rank(texts, k)
        with self.lock:  # one forward pass at a time per model; torch uses every core inside it
            return self.ranker.rank(texts, k=k)


class ModelCache:
    """Loaded rankers by project, reloaded when the project's active version changes; at most ``size`` kept.

    A model is loaded once however many requests ask for it at the same time (they wait for the one load); other
    projects keep serving meanwhile. ``batch_ms`` > 0 gathers concurrent requests to one model into one batch.
    """

    def __init__(self, device: str, size: int = 4, batch_ms: float = 0.0,
                 loader: Callable[[str, str], LabelRanker] | None = None) -> None:
        self.device, self.size, self.batch_ms = device, size, batch_ms
        self.loader = loader or load_ranker
        self._models: OrderedDict[int, _Loaded] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[int, threading.Lock] = {}

    def _cached(self, project_id: int, version_id: int) -> _Loaded | None:
        with self._lock:
            loaded = self._models.get(project_id)
            if loaded is not None and loaded.version_id == version_id:
                self._models.move_to_end(project_id)
                return loaded
            return None

    def get(self, project_id: int, version: VersionView) -> _Loaded:
        if (loaded := self._cached(project_id, version.id)) is not None:
            return loaded
        with self._lock:
            loading = self._loading.setdefault(project_id, threading.Lock())
        with loading:  # one load per project at a time; whoever waited finds it loaded
            if (loaded := self._cached(project_id, version.id)) is not None:
                return loaded
            ranker = self.loader(version.path, self.device)
            batcher = Batcher(ranker, self.batch_ms / 1000) if self.batch_ms > 0 else None
            loaded = _Loaded(version.id, ranker, threading.Lock(), batcher)
            with self._lock:
                old = self._models.pop(project_id, None)
                self._models[project_id] = loaded
                evicted = [old] if old is not None else []
                while len(self._models) > self.size:
                    evicted.append(self._models.popitem(last=False)[1])
            for gone in evicted:
                if gone.batcher is not None:
                    gone.batcher.close()
            return loaded


class Guard:
    """ASGI middleware in front of every ``/v1`` route but the health check: the bearer token is checked before
    anything of the body is read (no token and a bad body: 401), then the body is read up to ``max_body`` bytes
    (413 beyond). The projects the token reaches go to ``request.state.projects``."""

    def __init__(self, app: Any, db: Database, max_body: int = MAX_BODY_BYTES) -> None:
        self.app, self.db, self.max_body = app, db, max_body

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/") or path == "/v1/health":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await _reply(scope, receive, send, 401, "No bearer token: send `Authorization: Bearer <token>` (an admin "
                         "creates one with `xmtc tokens create`).", {"WWW-Authenticate": "Bearer"})
            return
        projects = await anyio.to_thread.run_sync(token_projects, self.db, token.strip())
        if projects is None:
            await _reply(scope, receive, send, 401, "The bearer token is unknown, expired or revoked.",
                         {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return
        too_big = f"The request body is over {self.max_body // (1024 * 1024)} MiB: send fewer or shorter documents."
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body:
            await _reply(scope, receive, send, 413, too_big)
            return
        scope.setdefault("state", {})["projects"] = projects
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:  # a body without a Content-Length (chunked) that runs over
                raise HTTPException(413, too_big)
            return message

        await self.app(scope, counted, send)


async def _reply(scope: dict[str, Any], receive: Callable, send: Callable, status: int, error: str,
                 headers: dict[str, str] | None = None) -> None:
    await JSONResponse({"error": error}, status, headers=headers)(scope, receive, send)


# --- the application -------------------------------------------------------------------------------------------------


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    """The API on the configured database (refused when its schema is behind the code: run ``xmtc db upgrade``)."""
    settings = settings or Settings.from_env()
    if db is None:
        db = Database(settings.db_url)
        db.prepare()
    cache = ModelCache(settings.device, batch_ms=settings.api_batch_ms)
    app = FastAPI(title="xmtc taxonomy tool API", version=API_VERSION,
                  description="Label suggestions from a project's active model, for other systems. Every /v1 route "
                              "but /v1/health needs `Authorization: Bearer <token>` (an admin creates one with "
                              "`xmtc tokens create`).")
    errors: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 404, 409, 413, 422, 500)}
    app.add_middleware(Guard, db=db)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "; ".join(_explain(e) for e in exc.errors())}, 422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": f"The server failed to answer ({type(exc).__name__}); its log has the details."},
                            500)

    def project_in(project_id: int, projects: set[int]) -> None:
        # A project the token does not reach answers as one that does not exist: no oracle for other projects' ids.
        if project_id not in projects:
            raise HTTPException(404, f"Project {project_id} does not exist or this token does not reach it.")

    @app.get("/v1/health", tags=["service"])
    def health() -> dict[str, str]:
        with db.session() as s:
            s.execute(select(1))
        return {"status": "ok"}

    @app.get("/v1/projects", response_model=list[ProjectOut], responses=errors, tags=["projects"])
    def projects(allowed: Scope) -> list[ProjectOut]:
        with db.session() as s:
            rows = s.execute(select(Project.id, Project.name, Project.description).where(Project.id.in_(allowed))
                             .order_by(Project.name)).all()
            counts = dict(s.execute(select(Label.project_id, func.count()).where(
                Label.project_id.in_(allowed), Label.removed_in_version_id.is_(None)).group_by(Label.project_id)).all())
        out = []
        for pid, name, description in rows:
            version = active_version(db, pid)
            out.append(ProjectOut(id=pid, name=name, description=description or "", labels=counts.get(pid, 0),
                                  model=_model(version) if version else None))
        return out

    @app.post("/v1/projects/{project_id}/suggest", response_model=SuggestResponse, responses=errors, tags=["labels"])
    def suggest(project_id: int, body: SuggestRequest, allowed: Scope) -> SuggestResponse:
        project_in(project_id, allowed)
        version = active_version(db, project_id)
        if version is None:
            raise HTTPException(409, f"Project {project_id} has no active model yet: build the label index or train "
                                     "a model in the app first.")
        try:
            ranked = cache.get(project_id, version).rank([d.text for d in body.documents], body.k)
        except XmtcError as exc:
            raise HTTPException(409, str(exc)) from exc
        ids = {p.label_id for preds in ranked for p in preds}
        with db.session() as s:
            names = {i: (uri, pref) for i, uri, pref in s.execute(
                select(Label.id, Label.external_id, Label.pref_label).where(Label.id.in_(ids)))} if ids else {}
        results = [DocumentSuggestions(id=doc.id, suggestions=[
            Suggestion(label_id=p.label_id, uri=names[p.label_id][0], label=names[p.label_id][1], score=score)
            for p, score in shown(preds, SCORE_DIGITS, body.threshold) if p.label_id in names])
            for doc, preds in zip(body.documents, ranked, strict=True)]
        return SuggestResponse(project_id=project_id, model=_model(version), results=results)

    @app.get("/v1/projects/{project_id}/labels/{label:path}", response_model=LabelOut, responses=errors,
             tags=["labels"])
    def label(project_id: int, label: str, allowed: Scope) -> LabelOut:
        project_in(project_id, allowed)
        found = find_label(db, project_id, label)
        detail = label_detail(db, project_id, found) if found is not None else None
        if detail is None:
            raise HTTPException(404, f"Project {project_id} has no label {label!r} (give its id or its external id).")
        return LabelOut(id=detail.id, uri=detail.external_id, label=detail.pref_label, alt_labels=detail.alt_labels,
                        description=detail.description or "", deprecated=detail.deprecated,
                        replaced_by=detail.replaced_by, paths=detail.paths, narrower=detail.children,
                        documents=detail.documents)

    app.state.db, app.state.models = db, cache
    return app


def _scope(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> set[int]:
    """The projects the request's bearer token reaches (checked by :class:`Guard` before the body was read; the
    bearer dependency declares the scheme in the OpenAPI description)."""
    return request.state.projects


Scope = Annotated[set[int], Depends(_scope)]


def _model(version: VersionView) -> ModelOut:
    return ModelOut(id=version.id, name=version.name, kind=version.kind)


def _explain(error: dict[str, Any]) -> str:
    """One validation error as ``where: what`` (``body.documents.0.text: the text is empty ...``)."""
    where = ".".join(str(p) for p in error.get("loc", ()))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def app_from_env() -> FastAPI:
    """The factory ``uvicorn --factory`` runs (settings from the environment)."""
    return create_app()


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the API with uvicorn (``workers`` processes share the port; each loads the models it serves)."""
    import uvicorn

    uvicorn.run("core.api:app_from_env", factory=True, host=host, port=port, workers=workers, log_level="warning")
