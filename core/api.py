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

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any

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
from core.model.labels import LabelRanker
from core.model.loading import load_ranker
from core.model.versions import VersionView, active_version
from storage.db import Database
from storage.models import Label, Project

MAX_TEXT_CHARS = 20_000
MAX_DOCUMENTS = 64
MAX_K = 100
API_VERSION = "1"
_bearer = HTTPBearer(auto_error=False)


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
    threshold: float | None = Field(None, description="Only labels scoring at least this (default: no threshold)")

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


# --- the model cache -------------------------------------------------------------------------------------------------


@dataclass
class _Loaded:
    version_id: int
    ranker: LabelRanker
    lock: threading.Lock


class ModelCache:
    """Loaded rankers by project, reloaded when the project's active version changes; at most ``size`` kept."""

    def __init__(self, device: str, size: int = 4) -> None:
        self.device, self.size = device, size
        self._models: OrderedDict[int, _Loaded] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, project_id: int, version: VersionView) -> _Loaded:
        with self._lock:
            loaded = self._models.get(project_id)
            if loaded is not None and loaded.version_id == version.id:
                self._models.move_to_end(project_id)
                return loaded
        ranker = load_ranker(version.path, self.device)  # outside the lock: other projects keep serving
        with self._lock:
            loaded = self._models.get(project_id)
            if loaded is None or loaded.version_id != version.id:
                loaded = _Loaded(version.id, ranker, threading.Lock())
                self._models[project_id] = loaded
            self._models.move_to_end(project_id)
            while len(self._models) > self.size:
                self._models.popitem(last=False)
            return loaded


# --- the application -------------------------------------------------------------------------------------------------


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    """The API on the configured database (refused when its schema is behind the code: run ``xmtc db upgrade``)."""
    settings = settings or Settings.from_env()
    if db is None:
        db = Database(settings.db_url)
        db.prepare()
    cache = ModelCache(settings.device)
    app = FastAPI(title="xmtc taxonomy tool API", version=API_VERSION,
                  description="Label suggestions from a project's active model, for other systems. Every /v1 route "
                              "but /v1/health needs `Authorization: Bearer <token>` (an admin creates one with "
                              "`xmtc tokens create`).")
    errors: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)}

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "; ".join(_explain(e) for e in exc.errors())}, 422)

    def project_in(project_id: int, projects: set[int]) -> None:
        if project_id not in projects:
            with db.session() as s:
                exists = s.get(Project, project_id) is not None
            if not exists:
                raise HTTPException(404, f"Project {project_id} does not exist.")
            raise HTTPException(403, f"This token is not scoped to project {project_id}; ask an admin for one that is.")

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
            loaded = cache.get(project_id, version)
            with loaded.lock:  # one forward pass at a time per model; torch uses every core inside it
                ranked = loaded.ranker.rank([d.text for d in body.documents], k=body.k)
        except XmtcError as exc:
            raise HTTPException(409, str(exc)) from exc
        ids = {p.label_id for preds in ranked for p in preds}
        with db.session() as s:
            names = {i: (uri, pref) for i, uri, pref in s.execute(
                select(Label.id, Label.external_id, Label.pref_label).where(Label.id.in_(ids)))} if ids else {}
        results = [DocumentSuggestions(id=doc.id, suggestions=[
            Suggestion(label_id=p.label_id, uri=names[p.label_id][0], label=names[p.label_id][1],
                       score=round(float(p.score), 6))
            for p in preds if (body.threshold is None or p.score >= body.threshold) and p.label_id in names])
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
    """The projects the request's bearer token reaches (401 without a valid one)."""
    if credentials is None:
        raise HTTPException(401, "No bearer token: send `Authorization: Bearer <token>` (an admin creates one "
                                 "with `xmtc tokens create`).", {"WWW-Authenticate": "Bearer"})
    projects = token_projects(request.app.state.db, credentials.credentials)
    if projects is None:
        raise HTTPException(401, "The bearer token is unknown, expired or revoked.",
                            {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return projects


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
