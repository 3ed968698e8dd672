"""The bulk LLM judging job against a fake OpenAI-compatible server, the judgment caches, the Evaluate read models."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, update

from core.config import Settings
from core.errors import XmtcError
from core.evaluation.jobs import JUDGE_PREDICTIONS, DbJudgmentCache, judging_plan
from core.evaluation.judge import JudgeDocument, Judgment, MemoryCache
from core.evaluation.views import (
    agreement_by_branch,
    agreement_by_mode,
    correct_in_top10,
    load_ratings,
    rating_pairs,
    ratings_export,
    sme_minutes,
    to_jsonl,
    top_level_branches,
)
from core.jobs import enqueue, get_job, request_cancel
from core.model.labels import Prediction
from core.model.predictions import store_predictions
from core.worker import WorkerProcess
from storage.models import Document, Event, Job, LLMJudgment, Rating
from tests.fakes import FakeOpenAIServer, empty_version, seed_ratings


@pytest.fixture
def judged(world, data_dir, monkeypatch):
    """Three test documents predicted by a BiCross version and a baseline; the LLM settings point at a fake."""
    db, pid, labels = world["db"], world["pid"], world["labels"]
    with db.session() as s:
        s.execute(update(Document).values(split="test"))
    baseline = empty_version(db, pid, data_dir / "models", "baseline")
    docs = world["docs"]
    store_predictions(db, world["version"], docs, [[Prediction(labels["mi"], 0.9, 0.9), Prediction(labels["card"], 0.8, 0.8)],
                                                   [Prediction(labels["bc"], 0.9, 0.9), Prediction(labels["onc"], 0.7, 0.7)],
                                                   [Prediction(labels["card"], 0.9, 0.9), Prediction(labels["bc"], 0.6, 0.6)]])
    store_predictions(db, baseline, docs, [[Prediction(labels["card"], 0.9, 0.9), Prediction(labels["med"], 0.5, 0.5)],
                                           [Prediction(labels["med"], 0.9, 0.9)],
                                           [Prediction(labels["mi"], 0.9, 0.9)]])
    with FakeOpenAIServer() as server:
        monkeypatch.setenv("XMTC_LLM_BASE_URL", server.base_url)
        monkeypatch.setenv("XMTC_LLM_MODEL", "judge")
        monkeypatch.setenv("XMTC_LLM_API_KEY", "sk-test")
        monkeypatch.setenv("XMTC_LLM_CONCURRENCY", "2")
        yield {**world, "baseline": baseline, "server": server}


def run_job(db, params: dict, project_id: int):
    job = enqueue(db, JUDGE_PREDICTIONS, project_id, params)
    WorkerProcess(db, Settings.from_env()).run_one()
    return get_job(db, job)


def test_the_job_judges_both_versions_once_per_label_and_a_rerun_costs_nothing(judged):
    db, pid, server = judged["db"], judged["pid"], judged["server"]
    versions = [judged["version"], judged["baseline"]]
    job = run_job(db, {"version_ids": versions}, pid)
    assert job.status == "done", job.error
    # One prompt per document, covering the union of both versions' labels (2+2, 2+1, 2+1 distinct names).
    assert len(server.requests) == 3
    assert (job.result["rated"], job.result["unrated"], job.result["not_judged"]) == (9, 0, 0)
    assert job.result["calls"] == 3 and job.result["prompt_tokens"] > 0
    assert job.progress == 1.0 and "9 labels rated, 0 unrated" in job.result["report"]
    with db.session() as s:
        llm = {(r.document_id, r.label_id, r.model_version_id) for r in s.scalars(select(Rating).where(Rating.kind == "llm"))}
        assert s.scalar(select(LLMJudgment).limit(1)).model == "judge"
    d1, d2, _ = judged["docs"]
    labels = judged["labels"]
    assert (d1, labels["card"], judged["version"]) in llm and (d1, labels["card"], judged["baseline"]) in llm
    assert (d2, labels["med"], judged["baseline"]) in llm and (d2, labels["med"], judged["version"]) not in llm
    assert len(llm) == 10  # each version's predictions: 6 for BiCross, 4 for the baseline
    again = run_job(db, {"version_ids": versions}, pid)
    assert again.status == "done" and again.result["calls"] == 0 and again.result["cached_labels"] == 9
    assert len(server.requests) == 3


def test_bad_requests_fail_with_a_reason(judged):
    db, pid = judged["db"], judged["pid"]
    with pytest.raises(XmtcError, match="Choose at least one"):
        judging_plan(db, pid, [])
    with pytest.raises(XmtcError, match="has no predictions for the train split"):
        judging_plan(db, pid, [judged["version"]], split="train")
    job = run_job(db, {"version_ids": [judged["version"]], "split": "train"}, pid)
    assert job.status == "failed" and "predict them on the Model page" in job.error


def test_the_api_key_is_nowhere_in_the_database_the_logs_or_the_exports(judged, monkeypatch, caplog):
    import logging

    from core.evaluation.views import ratings_export

    db, pid = judged["db"], judged["pid"]
    caplog.set_level(logging.DEBUG)  # the openai client's and the worker's most verbose logging
    monkeypatch.setenv("XMTC_LLM_API_KEY", "sk-wrong-secret-123")
    job = run_job(db, {"version_ids": [judged["version"]]}, pid)
    assert job.status == "failed" and "rejected the API key" in job.error
    monkeypatch.setenv("XMTC_LLM_API_KEY", "sk-test")
    assert run_job(db, {"version_ids": [judged["version"]]}, pid).status == "done"
    with db.session() as s:
        stored = " ".join(str(x) for x in s.execute(select(Job.params, Job.result, Job.error, Job.message)).all())
        stored += " ".join(str(p) for p in s.scalars(select(Event.payload)))
        stored += " ".join(str(x) for x in s.execute(select(LLMJudgment.explanation, LLMJudgment.model)).all())
    export = ratings_export(db, pid).to_csv()
    for secret in ("sk-wrong-secret-123", "sk-test"):
        assert secret not in stored and secret not in export and secret not in caplog.text
    assert "chat/completions" in caplog.text  # the client did log its requests


def test_cancelling_the_job_stops_it_and_keeps_what_was_paid_for(judged, monkeypatch):
    monkeypatch.setenv("XMTC_LLM_CONCURRENCY", "1")
    db, pid, server = judged["db"], judged["pid"], judged["server"]
    server.script = [("sleep", 0.6)] * 3
    job = enqueue(db, JUDGE_PREDICTIONS, pid, {"version_ids": [judged["version"]]})
    worker = threading.Thread(target=WorkerProcess(db, Settings.from_env()).run_one)
    worker.start()
    deadline = time.monotonic() + 20
    while get_job(db, job).progress == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    request_cancel(db, job)
    worker.join(30)
    view = get_job(db, job)
    assert view.status == "cancelled"
    with db.session() as s:
        cached = s.scalars(select(LLMJudgment.document_id).distinct()).all()
    assert 1 <= len(cached) < 3


@pytest.mark.parametrize("kind", ["memory", "database"])
def test_judgment_cache_contract(kind, world):
    cache = MemoryCache() if kind == "memory" else DbJudgmentCache(world["db"], world["pid"], "m", "judge-v1")
    doc = JudgeDocument(world["docs"][0], "T", "A")
    assert cache.get_many(["k1"]) == {}
    cache.put_many({"k1": (doc, Judgment("Cardiology", 2, "heart")), "k2": (doc, Judgment("Oncology", None, "no", "unrated"))})
    got = cache.get_many(["k1", "k2", "k3"])
    assert got["k1"].rating == 2 and got["k1"].rated and got["k2"].status == "unrated" and "k3" not in got
    if kind == "database":
        cache.put_many({"k1": (doc, Judgment("Cardiology", 0, "changed"))})  # the first verdict stands
        assert cache.get_many(["k1"])["k1"].rating == 2


def test_evaluate_read_models_on_seeded_ratings(judged):
    db, pid, labels = judged["db"], judged["pid"], judged["labels"]
    seed_ratings(db, pid, labels, judged["docs"], judged["users"][:2], judged["version"], judged["baseline"])
    data = load_ratings(db, pid)
    assert data.llm_raters == ["llm:judge"]
    pairs = rating_pairs(data, "llm:judge")
    # Pairs: (mi: LLM 2, SME 2), (card: LLM 1, SME 2), (bc: LLM 0, SME 0), (mi: LLM 2, other SME 1).
    assert sorted(zip(pairs["rating_llm"], pairs["rating_sme"], strict=True)) == [(0, 0), (1, 2), (2, 1), (2, 2)]
    overall = agreement_by_branch(pairs, data.branches)[0]
    assert overall.group == "(all)" and overall.three.n == 4 and overall.three.percent == 0.5
    assert overall.two.percent == 1.0  # 1 and 2 merged: every pair agrees
    branches = {r.group: r.three.n for r in agreement_by_branch(pairs, data.branches)}
    assert branches == {"(all)": 4, "Medicine": 4}  # every label sits under Medicine
    modes = {r.group: r.three.percent for r in agreement_by_mode(pairs)}
    assert modes == {"blind (LLM hidden)": 0.5, "LLM shown": 0.5}
    minutes = sme_minutes(data).set_index("mode")["median minutes"].to_dict()
    assert minutes == {"without the LLM (blind)": 2.0, "with the LLM's ratings": 0.75}
    table = correct_in_top10(db, pid, data, "llm:judge", [judged["version"], judged["baseline"]])
    row = table[(table["branch"] == "(all)") & (table["rater"] == "LLM")].set_index("version")
    # v1 (BiCross) top labels with LLM ratings: d1 mi 2, d1 card 1, d2 bc 0 -> 2 of 3 correct over 2 documents.
    assert row.loc["v1 (bicross)", "judged correct"] == 2 and row.loc["v1 (bicross)", "labels rated"] == 3
    assert row.loc["v1 (bicross)", "correct per document"] == 1.0
    # The baseline's d1 card carries the LLM's rating of the pair (1): 1 of 1.
    assert row.loc["v2 (baseline)", "judged correct"] == 1
    sme_row = table[(table["branch"] == "(all)") & (table["rater"] == "SME")].set_index("version")
    assert sme_row.loc["v1 (bicross)", "judged correct"] == 2  # mi: median_low(2, 1) = 1; card 2; bc 0
    strict = correct_in_top10(db, pid, data, "llm:judge", [judged["version"]], threshold=2)
    assert strict[(strict["branch"] == "(all)") & (strict["rater"] == "LLM")]["judged correct"].item() == 1
    assert top_level_branches(db, pid, {labels["bc"], labels["med"]}) == {labels["bc"]: ["Medicine"],
                                                                         labels["med"]: ["Medicine"]}
    export = ratings_export(db, pid)
    assert len(export) == 8 and set(export["rater_kind"]) == {"llm", "sme"}
    assert to_jsonl(export).count("\n") == 8 and '"rating": 2' in to_jsonl(export)
