"""The API's edges in process (FastAPI's test client, a ranker written as code): scores and thresholds, refusals,
authentication before the body, one load per model, and request batching."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.accounts.projects import create_project
from core.accounts.tokens import create_token
from core.api import MAX_BODY_BYTES, Batcher, ModelCache, create_app
from core.config import Settings
from core.data.concepts import read_taxonomy
from core.data.imports import import_taxonomy
from core.model.labels import Prediction, shown
from core.model.versions import active_version, register_version, write_bundle
from storage.models import Label
from tests.fakes import TAXONOMY_CSV, write

# Raw scores whose last digits round up: shown with 6 decimals they are larger than the raw score.
SCORES = (0.91234567, 0.71234567, 0.51234567, 0.31234567, 0.11234567)


class ScriptedRanker:
    """Every text gets the project's labels in a fixed order with :data:`SCORES`; a text with "boom" fails."""

    def __init__(self, label_ids: list[int], delay_s: float = 0.0) -> None:
        self.label_ids, self.delay_s = label_ids, delay_s
        self.calls: list[tuple[int, int]] = []  # (documents, k) per rank() call
        self._lock = threading.Lock()

    def rank(self, texts: list[str], k: int = 10) -> list[list[Prediction]]:
        with self._lock:
            self.calls.append((len(texts), k))
        time.sleep(self.delay_s)
        if any("boom" in t for t in texts):
            raise RuntimeError("the model fell over")
        return [[Prediction(i, s, s) for i, s in zip(self.label_ids, SCORES, strict=True)][:k] for _ in texts]


@pytest.fixture
def api(db, data_dir, tmp_path):
    pid = create_project(db, "cardio")
    other = create_project(db, "other")
    import_taxonomy(db, pid, read_taxonomy(write(tmp_path / "t.csv", TAXONOMY_CSV)), "v1")
    bundle = write_bundle(data_dir / "models", pid, "bicross", lambda folder: {})
    register_version(db, pid, "bicross", bundle, {}, {}, None, activate=True)
    with db.session() as s:
        label_ids = list(s.scalars(select(Label.id).where(Label.project_id == pid).order_by(Label.id)))
    settings = Settings.from_env()

    def client(batch_ms: float = 0.0, delay_s: float = 0.0) -> tuple[TestClient, ScriptedRanker]:
        ranker = ScriptedRanker(label_ids, delay_s)
        app = create_app(settings, db)
        app.state.models.batch_ms = batch_ms
        app.state.models.loader = lambda path, device: ranker
        return TestClient(app, raise_server_exceptions=False), ranker

    token = create_token(db, "catalogue", [pid], None)[0]
    return {"client": client, "pid": pid, "other": other, "auth": {"Authorization": f"Bearer {token}"}, "db": db}


def suggest(api, client, body, headers=None, **kwargs):
    return client.post(f"/v1/projects/{api['pid']}/suggest", json=body, headers=api["auth"] if headers is None else headers,
                       **kwargs)


def test_a_label_whose_returned_score_equals_the_threshold_is_kept(api):
    client, _ = api["client"]()
    scores = [s["score"] for s in suggest(api, client, {"text": "heart", "k": 5}).json()["results"][0]["suggestions"]]
    assert scores == [round(s, 6) for s in SCORES]
    for n, cut in enumerate(scores, start=1):
        kept = suggest(api, client, {"text": "heart", "k": 5, "threshold": cut}).json()["results"][0]["suggestions"]
        assert [s["score"] for s in kept] == scores[:n]  # the raw score is below the shown one: still kept
    assert shown([Prediction(1, 0.12345678, 0.1)], 4, 0.1235) == [(Prediction(1, 0.12345678, 0.1), 0.1235)]


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity"])
def test_a_threshold_that_is_not_a_finite_number_is_refused(api, value):
    client, _ = api["client"]()
    got = client.post(f"/v1/projects/{api['pid']}/suggest", content=b'{"text": "heart", "threshold": ' + value + b"}",
                      headers={**api["auth"], "content-type": "application/json"})
    assert got.status_code == 422 and "threshold" in got.json()["error"]


def test_an_unexpected_failure_answers_json_not_plain_text(api):
    client, _ = api["client"]()
    got = suggest(api, client, {"text": "boom"})
    assert got.status_code == 500 and got.headers["content-type"] == "application/json"
    assert "RuntimeError" in got.json()["error"] and "fell over" not in got.json()["error"]


def test_the_token_is_checked_before_the_body_is_read(api):
    client, ranker = api["client"]()
    bad = {"content": b"{not json", "headers": {"content-type": "application/json"}}
    assert client.post(f"/v1/projects/{api['pid']}/suggest", **bad).status_code == 401
    nobody = client.post(f"/v1/projects/{api['pid']}/suggest", content=b"{not json",
                         headers={"content-type": "application/json", "Authorization": "Bearer xmtc_nope"})
    assert nobody.status_code == 401 and "unknown, expired or revoked" in nobody.json()["error"]
    assert client.post(f"/v1/projects/{api['pid']}/suggest", content=b"{not json",
                       headers={**api["auth"], "content-type": "application/json"}).status_code == 422
    assert ranker.calls == []


def test_a_project_outside_the_tokens_scope_answers_as_one_that_does_not_exist(api):
    client, _ = api["client"]()
    outside = client.post(f"/v1/projects/{api['other']}/suggest", json={"text": "heart"}, headers=api["auth"])
    missing = client.post("/v1/projects/9999/suggest", json={"text": "heart"}, headers=api["auth"])
    assert outside.status_code == missing.status_code == 404
    assert outside.json()["error"].replace(str(api["other"]), "N") == missing.json()["error"].replace("9999", "N")
    label = client.get(f"/v1/projects/{api['other']}/labels/mi", headers=api["auth"])
    assert label.status_code == 404


def test_a_body_over_the_limit_is_refused_unread(api):
    client, ranker = api["client"]()
    big = b'{"text": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'
    got = client.post(f"/v1/projects/{api['pid']}/suggest", content=big,
                      headers={**api["auth"], "content-type": "application/json"})
    assert got.status_code == 413 and "MiB" in got.json()["error"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(MAX_BODY_BYTES // (1024 * 1024) + 2):
            yield b" " * (1024 * 1024)

    streamed = client.post(f"/v1/projects/{api['pid']}/suggest", content=chunks(),
                           headers={**api["auth"], "content-type": "application/json"})
    assert streamed.status_code == 413 and ranker.calls == []


def test_concurrent_first_requests_load_a_model_once(api):
    loads = []

    def loader(path, device):
        loads.append(path)
        time.sleep(0.3)
        return ScriptedRanker([1])

    cache = ModelCache("cpu", loader=loader)
    version = active_version(api["db"], api["pid"])
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: cache.get(api["pid"], version), range(8)))
    assert len(loads) == 1 and all(g is got[0] for g in got)


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(api):
    client, ranker = api["client"](batch_ms=50, delay_s=0.05)
    ks = [1, 2, 3, 4, 5] * 4
    with ThreadPoolExecutor(len(ks)) as pool:
        answers = list(pool.map(lambda k: suggest(api, client, {"documents": [{"id": str(k), "text": "heart"}], "k": k}),
                                ks))
    assert all(a.status_code == 200 for a in answers)
    for k, a in zip(ks, answers, strict=True):
        [result] = a.json()["results"]
        assert result["id"] == str(k) and [s["score"] for s in result["suggestions"]] == [round(s, 6) for s in SCORES[:k]]
    assert len(ranker.calls) < len(ks) and sum(n for n, _ in ranker.calls) == len(ks)
    assert max(n for n, _ in ranker.calls) > 1  # several requests' documents in one rank() call


def test_a_failing_request_in_a_batch_does_not_fail_the_others():
    ranker = ScriptedRanker([1, 2, 3, 4, 5], delay_s=0.05)
    batcher = Batcher(ranker, window_s=0.2)
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(batcher.rank, [text], 2) for text in ("a", "boom", "b")]
    assert [len(f.result()[0]) for f in (futures[0], futures[2])] == [2, 2]
    with pytest.raises(RuntimeError, match="fell over"):
        futures[1].result()
    batcher.close()
