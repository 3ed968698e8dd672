"""The REST API as another system sees it: a real server (``xmtc serve``) on a real port, a real HTTP client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from core.accounts.auth import create_user
from core.accounts.projects import create_project
from core.accounts.tokens import create_token, revoke_token
from core.api import MAX_TEXT_CHARS
from core.config import ROOT, Settings
from core.data.concepts import read_taxonomy
from core.data.imports import import_taxonomy
from core.jobs import enqueue
from core.worker import WorkerProcess
from storage.db import Database
from tests.fakes import TAXONOMY_CSV, write

HEART = "Acute myocardial infarction: outcomes after a heart attack"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A project with a real zero-shot model (the bundled encoder), one without a model, tokens, and the API
    running as ``xmtc serve`` in its own process on the same database."""
    folder = tmp_path_factory.mktemp("var")
    env = {**os.environ, "XMTC_DATA_DIR": str(folder), "XMTC_START_WORKER": "0", "XMTC_DEVICE": "cpu"}
    env.pop("XMTC_DATABASE_URL", None)
    settings = Settings.from_env(env)
    db = Database(settings.db_url)
    db.create_all()
    pid = create_project(db, "cardio")
    other = create_project(db, "no model yet")
    import_taxonomy(db, pid, read_taxonomy(write(folder / "t.csv", TAXONOMY_CSV)), "v1")
    enqueue(db, "build_label_index", pid)
    worker = WorkerProcess(db, settings)
    worker.register()
    worker.run_one()
    tokens = {"cardio": create_token(db, "catalogue", [pid], None)[0],
              "other": create_token(db, "indexer", [other], None)[0],
              "both": create_token(db, "both", [pid, other], None)[0]}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/v1/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the API did not start: {proc.stdout.read()}")
        time.sleep(0.2)
    yield {"base": base, "db": db, "pid": pid, "other": other, "tokens": tokens}
    proc.terminate()
    proc.wait(timeout=20)
    db.dispose()


def call(server, method: str, path: str, token: str | None = "cardio", **kwargs) -> httpx.Response:
    headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {server['tokens'].get(token, token)}"} if token else {})}
    return httpx.request(method, server["base"] + path, headers=headers, timeout=60, **kwargs)


def test_suggest_ranks_the_obvious_label_first_for_one_and_for_many_documents(server):
    one = call(server, "POST", f"/v1/projects/{server['pid']}/suggest", json={"text": HEART, "k": 3})
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["model"]["kind"] == "zero_shot"
    first = body["results"][0]["suggestions"]
    assert [s["uri"] for s in first][:1] == ["mi"] and first[0]["label"] == "Myocardial Infarction"
    assert len(first) == 3 and first[0]["score"] >= first[1]["score"] >= first[2]["score"]
    many = call(server, "POST", f"/v1/projects/{server['pid']}/suggest", json={"documents": [
        {"id": "a", "text": "Breast cancer tumours in women"}, {"id": "b", "text": HEART}], "k": 2}).json()
    assert [r["id"] for r in many["results"]] == ["a", "b"]
    assert many["results"][0]["suggestions"][0]["uri"] == "bc" and many["results"][1]["suggestions"][0]["uri"] == "mi"
    # the threshold leaves out what scores below it, and keeps a label whose returned score equals it
    for n, cut in enumerate(s["score"] for s in first):
        kept = call(server, "POST", f"/v1/projects/{server['pid']}/suggest",
                    json={"text": HEART, "k": 3, "threshold": cut}).json()["results"][0]["suggestions"]
        assert [s["uri"] for s in kept] == [s["uri"] for s in first if s["score"] >= cut] and len(kept) >= n + 1


def test_projects_lists_only_what_the_token_reaches(server):
    listed = call(server, "GET", "/v1/projects").json()
    assert [(p["id"], p["labels"], p["model"]["kind"]) for p in listed] == [(server["pid"], 5, "zero_shot")]
    both = call(server, "GET", "/v1/projects", "both").json()
    assert {p["name"]: p["model"] for p in both}["no model yet"] is None and len(both) == 2


def test_a_label_by_external_id_or_id_with_its_place_in_the_taxonomy(server):
    mi = call(server, "GET", f"/v1/projects/{server['pid']}/labels/mi")
    assert mi.status_code == 200, mi.text
    body = mi.json()
    assert body["label"] == "Myocardial Infarction" and "Heart Attack" in body["alt_labels"]
    assert body["paths"] == [["Medicine", "Cardiology", "Myocardial Infarction"]]
    same = call(server, "GET", f"/v1/projects/{server['pid']}/labels/{body['id']}").json()
    assert same == body
    bc = call(server, "GET", f"/v1/projects/{server['pid']}/labels/bc").json()
    assert len(bc["paths"]) == 2  # a poly-hierarchy: under Oncology and under Cardiology


@pytest.mark.parametrize(("token", "status", "words"), [
    (None, 401, "No bearer token"), ("not-a-token", 401, "unknown, expired or revoked"),
])
def test_requests_without_a_valid_token_are_refused(server, token, status, words):
    got = call(server, "POST", f"/v1/projects/{server['pid']}/suggest", token, json={"text": HEART})
    assert got.status_code == status and words in got.json()["error"]
    assert got.headers["www-authenticate"].startswith("Bearer")


def test_bad_input_gets_a_clear_4xx(server):
    pid = server["pid"]
    cases = [
        ("POST", f"/v1/projects/{pid}/suggest", {"json": {"text": "   "}}, 422, "the text is empty"),
        ("POST", f"/v1/projects/{pid}/suggest", {"json": {"text": "x" * (MAX_TEXT_CHARS + 1)}}, 422,
         f"at most {MAX_TEXT_CHARS} characters"),
        ("POST", f"/v1/projects/{pid}/suggest", {"json": {}}, 422, "no document"),
        ("POST", f"/v1/projects/{pid}/suggest", {"json": {"text": HEART, "k": 0}}, 422, "body.k"),
        ("POST", f"/v1/projects/{pid}/suggest", {"content": b"{not json", "headers": {"content-type": "application/json"}},
         422, "JSON"),
        ("POST", "/v1/projects/999/suggest", {"json": {"text": HEART}}, 404, "Project 999 does not exist"),
        ("POST", f"/v1/projects/{server['other']}/suggest", {"json": {"text": HEART}}, 404, "this token does not reach it"),
        ("GET", f"/v1/projects/{pid}/labels/nope", {}, 404, "has no label 'nope'"),
    ]
    for method, path, kwargs, status, words in cases:
        got = call(server, method, path, **kwargs)
        assert got.status_code == status, (path, kwargs, got.text)
        assert words in got.json()["error"], got.text
    no_model = call(server, "POST", f"/v1/projects/{server['other']}/suggest", "other", json={"text": HEART})
    assert no_model.status_code == 409 and "no active model" in no_model.json()["error"]


def test_a_revoked_token_stops_working_at_once(server):
    token, token_id = create_token(server["db"], "short-lived", [server["pid"]], None)
    assert call(server, "GET", "/v1/projects", token).status_code == 200
    revoke_token(server["db"], token_id, None)
    assert call(server, "GET", "/v1/projects", token).status_code == 401


def test_the_openapi_description_names_every_route(server):
    spec = httpx.get(server["base"] + "/openapi.json").json()
    assert {"/v1/projects", "/v1/projects/{project_id}/suggest", "/v1/projects/{project_id}/labels/{label}"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_only_an_admin_creates_tokens_and_only_the_hash_is_stored(server):
    from sqlalchemy import select

    from core.errors import PermissionDenied
    from storage.models import ApiToken

    db = server["db"]
    sme = create_user(db, "sme-api", "long enough", "annotator")
    with pytest.raises(PermissionDenied):
        create_token(db, "mine", [server["pid"]], sme.id)
    with db.session() as s:
        stored = list(s.scalars(select(ApiToken.token_hash)))
    assert server["tokens"]["cardio"] not in stored and all(len(h) == 64 for h in stored)
