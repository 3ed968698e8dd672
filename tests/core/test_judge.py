"""The LLM judge: the real ``openai`` client over real HTTP against a fake OpenAI-compatible server."""

from __future__ import annotations

import json
import threading

import pytest

from core.evaluation.judge import (
    PROMPTS,
    RATED,
    UNRATED,
    JudgeDocument,
    LLMJudge,
    LLMTransient,
    LLMUnavailable,
    MemoryCache,
    OpenAIBackend,
    extract_json,
    parse_ratings,
)
from tests.fakes import FakeOpenAIServer, ScriptedBackend, topics_in

DOC = JudgeDocument(1, "Heart attack outcomes", "Patients with acute myocardial infarction were followed for a year.",
                    ("cardiology",))
LABELS = ["Myocardial Infarction", "Breast Neoplasms", "Cardiology"]


def reply(*entries: tuple[int, str, object]) -> str:
    return json.dumps({"ratings": [{"topic": t, "label": lab, "score": s, "explanation": f"why {lab}"}
                                   for t, lab, s in entries]})


@pytest.fixture
def server():
    with FakeOpenAIServer() as fake:
        yield fake


def judge_for(server: FakeOpenAIServer, key: str = "sk-test", timeout_s: float = 10.0, retries: int = 2,
              cache: MemoryCache | None = None) -> LLMJudge:
    return LLMJudge(OpenAIBackend("judge", server.base_url, key, timeout_s=timeout_s, max_retries=retries), cache)


def test_a_good_answer_rates_every_label_in_one_call_with_the_document_first(server):
    server.script = [reply((1, "Myocardial Infarction", 2), (2, "Breast Neoplasms", 0), (3, "Cardiology", 1))]
    judge = judge_for(server)
    out = judge.judge(DOC, LABELS)
    assert [(j.label, j.rating, j.status) for j in out] == [
        ("Myocardial Infarction", 2, RATED), ("Breast Neoplasms", 0, RATED), ("Cardiology", 1, RATED)]
    assert out[0].explanation == "why Myocardial Infarction"
    (request,) = server.requests
    assert request["temperature"] == 0
    assert request["response_format"]["type"] == "json_schema"
    prompt = request["messages"][-1]["content"]
    assert prompt.index("acute myocardial infarction") < prompt.index("1. Myocardial Infarction")
    assert topics_in(prompt) == LABELS
    assert judge.usage.calls == 1 and judge.usage.prompt_tokens > 0 and judge.usage.completion_tokens > 0


def test_json_inside_prose_and_a_code_fence_is_parsed(server):
    body = reply((1, "Myocardial Infarction", 2), (2, "Breast Neoplasms", 0), (3, "Cardiology", 2))
    server.script = [f"Sure! Here are my ratings:\n```json\n{body}\n```\nLet me know if you need more."]
    out = judge_for(server).judge(DOC, LABELS)
    assert [j.rating for j in out] == [2, 0, 2]
    assert len(server.requests) == 1


def test_a_missing_label_is_asked_again_alone(server):
    server.script = [reply((1, "Myocardial Infarction", 2), (3, "Cardiology", 1)), reply((1, "Breast Neoplasms", 0))]
    out = judge_for(server).judge(DOC, LABELS)
    assert [j.rating for j in out] == [2, 0, 1]
    assert len(server.requests) == 2
    reask = server.requests[1]["messages"][-1]["content"]
    assert topics_in(reask) == ["Breast Neoplasms"]
    assert "acute myocardial infarction" in reask  # the same document prefix


def test_a_label_still_missing_after_the_reask_is_unrated_never_guessed_and_cached(server):
    server.script = [reply((1, "Myocardial Infarction", 2)), "I cannot help with that."]
    judge = judge_for(server)
    out = judge.judge(DOC, LABELS)
    assert out[0].rating == 2
    assert [(j.rating, j.status) for j in out[1:]] == [(None, UNRATED), (None, UNRATED)]
    assert "no valid 0/1/2 score" in out[1].explanation
    again = judge.judge(DOC, LABELS)  # a rerun pays for nothing: unrated is an explicit, cached verdict
    assert len(server.requests) == 2
    assert [j.status for j in again] == [RATED, UNRATED, UNRATED]


def test_duplicated_labels_with_conflicting_scores_are_asked_again(server):
    conflicting = json.dumps({"ratings": [
        {"topic": 1, "label": "Myocardial Infarction", "score": 2, "explanation": "a"},
        {"topic": 1, "label": "Myocardial Infarction", "score": 0, "explanation": "b"},
        {"topic": 2, "label": "Breast Neoplasms", "score": 0, "explanation": "c"},
        {"topic": 2, "label": "Breast Neoplasms", "score": 0, "explanation": "c"},
        {"topic": 3, "label": "Cardiology", "score": 1, "explanation": "d"}]})
    server.script = [conflicting, reply((1, "Myocardial Infarction", 2))]
    out = judge_for(server).judge(DOC, LABELS)
    assert [j.rating for j in out] == [2, 0, 1]  # the agreeing duplicate counts once; the conflict was re-asked
    assert topics_in(server.requests[1]["messages"][-1]["content"]) == ["Myocardial Infarction"]


def test_a_score_of_3_is_re_asked_and_never_clamped(server):
    server.script = [reply((1, "Myocardial Infarction", 3), (2, "Breast Neoplasms", 0), (3, "Cardiology", 1)),
                     reply((1, "Myocardial Infarction", 3))]
    out = judge_for(server).judge(DOC, LABELS)
    assert (out[0].rating, out[0].status) == (None, UNRATED)
    assert [j.rating for j in out[1:]] == [0, 1]
    assert len(server.requests) == 2


def test_a_429_is_retried_with_backoff_then_succeeds(server):
    server.script = [("status", 429), reply((1, "Myocardial Infarction", 2), (2, "Breast Neoplasms", 0),
                                            (3, "Cardiology", 1))]
    out = judge_for(server).judge(DOC, LABELS)
    assert [j.rating for j in out] == [2, 0, 1]
    assert len(server.requests) == 2


def test_server_errors_beyond_the_retries_leave_labels_unjudged_for_a_later_run(server):
    server.script = [("status", 503), ("status", 503)]
    judge = judge_for(server, retries=1)
    out = judge.judge(DOC, LABELS)
    assert all(j.status == UNRATED and not j.final for j in out)
    assert "503" in out[0].explanation
    later = judge.judge(DOC, LABELS)  # not cached: the next run asks again and succeeds
    assert all(j.status == RATED for j in later)


def test_a_timeout_leaves_the_labels_unjudged_and_a_rerun_asks_again(server):
    server.script = [("sleep", 1.5)]
    judge = judge_for(server, timeout_s=0.4, retries=0)
    out = judge.judge(DOC, LABELS)
    assert all(j.status == UNRATED and not j.final for j in out)
    assert "did not answer within 0.4 s" in out[0].explanation
    assert judge.usage.calls == 0
    assert all(j.rated for j in judge.judge(DOC, LABELS))


def test_a_wrong_api_key_stops_with_a_clear_message_and_caches_nothing(server):
    cache = MemoryCache()
    judge = judge_for(server, key="sk-wrong", cache=cache)
    with pytest.raises(LLMUnavailable, match="rejected the API key"):
        judge.judge(DOC, LABELS)
    assert cache.items == {}
    assert "sk-wrong" not in str(judge.backend.__dict__.get("base_url"))


def test_an_unreachable_server_and_an_unknown_model_say_what_to_fix():
    with pytest.raises(LLMUnavailable, match="Cannot reach the LLM"):
        LLMJudge(OpenAIBackend("judge", "http://127.0.0.1:9/v1", "k", timeout_s=2, max_retries=0)).judge(DOC, LABELS)
    with pytest.raises(LLMUnavailable, match="XMTC_LLM_MODEL"):
        OpenAIBackend("", "http://127.0.0.1:9/v1")


def test_a_server_without_json_schema_falls_back_to_json_mode_and_remembers():
    with FakeOpenAIServer(formats=("json_object",)) as server:
        judge = judge_for(server)
        assert all(j.rated for j in judge.judge(DOC, LABELS))
        assert [r.get("response_format", {}).get("type") for r in server.requests] == ["json_schema", "json_object"]
        judge.judge(JudgeDocument(2, "Other", "Another abstract."), LABELS)
        assert server.requests[-1]["response_format"]["type"] == "json_object"


def test_a_server_answering_500_to_an_unknown_response_format_is_asked_more_plainly():
    """llama-cpp-python's server answers json_schema with HTTP 500 (a validation error), not 400."""
    with FakeOpenAIServer(formats=("json_object",), format_error=500) as server:
        judge = judge_for(server, retries=0)
        assert all(j.rated for j in judge.judge(DOC, LABELS))
        assert server.requests[-1]["response_format"]["type"] == "json_object"


def test_the_cache_key_is_document_label_model_and_prompt_version(server):
    cache = MemoryCache()
    judge = judge_for(server, cache=cache)
    judge.judge(DOC, LABELS)
    assert len(server.requests) == 1
    judge.judge(DOC, [*LABELS[:2], "Humans"])  # only the new label is asked
    assert topics_in(server.requests[-1]["messages"][-1]["content"]) == ["Humans"]
    changed = JudgeDocument(1, DOC.title, DOC.abstract + " Revised.", DOC.keywords)
    judge.judge(changed, LABELS[:1])  # a changed text is a new document
    other_model = LLMJudge(OpenAIBackend("judge-2", server.base_url, "sk-test"), cache)
    other_model.judge(DOC, LABELS[:1])  # another model is another judgment
    assert len(server.requests) == 4
    assert judge.usage.cached_labels == 2


def test_at_most_the_concurrency_limit_of_requests_are_in_flight():
    with FakeOpenAIServer() as server:
        server.script = [("sleep", 0.2)] * 6
        judge = judge_for(server)
        docs = [JudgeDocument(i, f"Title {i}", f"Abstract {i} about cardiology.") for i in range(6)]
        seen = []
        out = judge.judge_many([(d, LABELS) for d in docs], concurrency=2, on_done=lambda d, js: seen.append(
            (d.key, threading.current_thread() is threading.main_thread())))
        assert sorted(out) == list(range(6))
        assert server.max_inflight == 2
        assert all(main for _, main in seen)


def test_parsing_is_tolerant_but_never_guesses():
    assert extract_json('noise {"a": [1, 2]} tail') == {"a": [1, 2]}
    assert extract_json("no json here") is None
    assert extract_json('[{"topic": 1, "score": 2}]') == [{"topic": 1, "score": 2}]
    labels = ["A", "B", "C"]
    text = json.dumps([{"label": "b", "rating": "2", "reason": "by name"}, {"topic": 3, "score": 1.0},
                       {"topic": 1, "score": True}, {"topic": 9, "score": 1}])
    assert parse_ratings(text, labels) == {1: (2, "by name"), 2: (1, "")}
    assert parse_ratings('{"ratings": [{"topic": 1, "score": -1}]}', labels) == {}


def test_the_prompt_template_is_versioned_and_shows_every_topic():
    template = PROMPTS["judge-v1"]
    messages = template.messages("T", "Abstract text", ["kw"], ["Alpha", "Beta"])
    assert messages[0]["role"] == "system" and "JSON" in messages[0]["content"]
    assert topics_in(messages[1]["content"]) == ["Alpha", "Beta"]
    assert template.version == "judge-v1"


@pytest.mark.parametrize("kind", ["http", "scripted"])
def test_backend_contract(kind, server):
    """Every ChatBackend: returns the text and token counts, and turns failures into the two domain errors."""
    good = reply((1, "Myocardial Infarction", 2))
    if kind == "http":
        server.script = [good, ("status", 503), ("status", 503)]
        backend, bad = OpenAIBackend("judge", server.base_url, "sk-test", max_retries=1), \
            OpenAIBackend("judge", server.base_url, "sk-nope", max_retries=0)
    else:
        backend = ScriptedBackend([good, LLMTransient("server failed (503)")])
        bad = ScriptedBackend([LLMUnavailable("rejected the API key")])
    messages = PROMPTS["judge-v1"].messages("T", "A", [], ["Myocardial Infarction"])
    completion = backend.complete(messages, {})
    assert json.loads(completion.text)["ratings"][0]["score"] == 2
    assert completion.prompt_tokens > 0 and completion.completion_tokens > 0
    with pytest.raises(LLMTransient):
        backend.complete(messages, {})
    with pytest.raises(LLMUnavailable):
        bad.complete(messages, {})
