"""Fakes written as code: small corpora, taxonomies and job handlers for tests."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from core.jobs import JobContext, job_handler

TAXONOMY_CSV = """id,label,parents,alt_labels,description
med,Medicine,,,
card,Cardiology,med,Heart medicine,Diseases of the heart
mi,Myocardial Infarction,card,Heart Attack|MI,Death of heart muscle
onc,Oncology,med,Cancer medicine,
bc,Breast Neoplasms,onc|card,Breast Cancer,A poly-hierarchy example with two parents
"""

CORPUS_CSV = """doc_id,title,abstract,tags,split
1,Heart attack outcomes,Patients with acute myocardial infarction were followed.,"['Myocardial Infarction', 'Cardiology']",train
2,Tumour growth,Breast tumours grew slowly in the cohort.,"[""Breast Neoplasms""]",train
3,Cardio-oncology,Heart damage after breast cancer therapy.,Cardiology|Breast Neoplasms,test
"""


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@job_handler("test_sleep", "Sleep (test)")
def sleep_job(ctx: JobContext) -> dict:
    """Reports progress for ``seconds``; used to kill a worker mid-job and to cancel a job."""
    seconds = float(ctx.params.get("seconds", 1.0))
    steps = max(1, int(seconds / 0.1))
    for i in range(steps):
        time.sleep(seconds / steps)
        ctx.progress((i + 1) / steps, f"step {i + 1}/{steps}", force=True)
    return {"slept": seconds}


GATE = threading.Event()  # what test_register_version waits for before it goes on


@job_handler("test_register_version", "Register a model version (test)")
def register_version_job(ctx: JobContext) -> dict:
    """Reports progress, waits for :data:`GATE`, then (with ``report``) reports again and registers and activates a
    version: a job that goes on after its worker lost it."""
    from core.model.versions import register_version, write_bundle

    ctx.progress(0.1, "started", force=True)
    if not GATE.wait(30):
        raise TimeoutError("the test never opened the gate")
    if ctx.params.get("report"):
        ctx.progress(0.5, "going on", force=True)
    bundle = write_bundle(ctx.settings.models_dir, ctx.project_id, "zero_shot", lambda folder: {})
    version = register_version(ctx.db, ctx.project_id, "zero_shot", bundle, {}, {}, None, owner=ctx.owner,
                               activate=True)
    return {"model_version_id": version}


@job_handler("test_fail", "Fail (test)")
def fail_job(ctx: JobContext) -> dict:
    raise RuntimeError("boom")


# --- a fake OpenAI-compatible HTTP server (the real ``openai`` client talks to it over real HTTP) ------------


def topics_in(prompt: str) -> list[str]:
    """The numbered topics of a judge prompt, in order."""
    block = prompt.split("Topics:\n", 1)[1].split("\n\n", 1)[0] if "Topics:\n" in prompt else ""
    return [m.group(1).strip() for m in re.finditer(r"^\d+\. (.+)$", block, re.M)]


def heuristic_reply(prompt: str) -> str:
    """A well-formed answer: 2 when the topic's words are all in the document, 1 when some are, else 0."""
    doc = prompt.split("Which of these", 1)[0].split("Your previous answer", 1)[0].lower()
    ratings = []
    for i, topic in enumerate(topics_in(prompt), start=1):
        words = [w for w in topic.lower().replace(",", " ").split() if len(w) > 3]
        hits = sum(w[:5] in doc for w in words)
        score = 2 if words and hits == len(words) else 1 if hits else 0
        ratings.append({"topic": i, "label": topic, "score": score, "explanation": f"{hits} of the topic's words appear."})
    return json.dumps({"ratings": ratings})


class FakeOpenAIServer:
    """An OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1 with scripted behaviour per request.

    ``script`` items, used in order (then ``default``): a string (the reply's content), a callable
    ``(prompt) -> content``, ``("status", code)`` (an error answer), ``("sleep", seconds)`` (answers late).
    Requests are recorded in ``requests``; a wrong bearer token gets 401; ``formats`` lists the
    ``response_format`` types the server accepts (others get ``format_error``: 400 from most servers, 500 from
    llama-cpp-python's).
    """

    def __init__(self, api_key: str = "sk-test", formats: tuple[str, ...] = ("json_schema", "json_object"),
                 default=heuristic_reply, format_error: int = 400) -> None:
        self.api_key, self.formats, self.default, self.format_error = api_key, formats, default, format_error
        self.script: list = []
        self.requests: list[dict] = []
        self.inflight = self.max_inflight = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with fake.lock:
                    fake.requests.append(body)
                    step = fake.script.pop(0) if fake.script else fake.default
                    fake.inflight += 1
                    fake.max_inflight = max(fake.max_inflight, fake.inflight)
                self.counted = True
                try:
                    self._answer(body, step)
                finally:
                    self._done()

            def _done(self) -> None:
                """The request is no longer in flight: counted off before its answer's bytes go out (once they
                have, the client may send its next request before this thread runs again)."""
                with fake.lock:
                    if self.counted:
                        fake.inflight -= 1
                        self.counted = False

            def _answer(self, body: dict, step) -> None:
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    return self._send(401, {"error": {"message": "Incorrect API key provided",
                                                      "type": "invalid_request_error", "code": "invalid_api_key"}})
                fmt = (body.get("response_format") or {}).get("type")
                if fmt and fmt not in fake.formats:
                    return self._send(fake.format_error, {"error": {"message": f"response_format {fmt} is not supported",
                                                                    "type": "invalid_request_error"}})
                if isinstance(step, tuple) and step[0] == "status":
                    return self._send(step[1], {"error": {"message": f"scripted {step[1]}", "type": "server_error"}},
                                      {"retry-after-ms": "10"})
                if isinstance(step, tuple) and step[0] == "sleep":
                    time.sleep(step[1])
                    step = fake.default
                prompt = body["messages"][-1]["content"]
                content = step(prompt) if callable(step) else step
                return self._send(200, {
                    "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(content) // 4,
                              "total_tokens": len(prompt) // 4 + len(content) // 4}})

            def _send(self, code: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self._done()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

        return Handler

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class ScriptedBackend:
    """A :class:`core.evaluation.judge.ChatBackend` without HTTP: replies (strings or exceptions) in order, then heuristic ones."""

    def __init__(self, replies: list | None = None, model: str = "scripted") -> None:
        self.model, self.replies, self.prompts = model, list(replies or []), []

    def complete(self, messages, schema):
        from core.evaluation.judge import Completion

        prompt = messages[-1]["content"]
        self.prompts.append(prompt)
        step = self.replies.pop(0) if self.replies else heuristic_reply
        if isinstance(step, Exception):
            raise step
        text = step(prompt) if callable(step) else step
        return Completion(text, len(prompt) // 4, len(text) // 4)


def seed_ratings(db, project_id: int, labels: dict[str, int], docs: list[int], users: list[int], version: int,
                 baseline: int) -> None:
    """LLM and SME ratings of a few (document, label) pairs of the fake taxonomy, blind and with the LLM shown."""
    from storage.models import Rating

    (d1, d2, *_), (sme, other) = docs, users
    rows = [  # (doc, label, version, kind, rater, user, rating, seconds, llm_shown)
        (d1, labels["mi"], version, "llm", "llm:judge", None, 2, None, False),
        (d1, labels["card"], version, "llm", "llm:judge", None, 1, None, False),
        (d1, labels["card"], baseline, "llm", "llm:judge", None, 1, None, False),  # the same pair under another version
        (d2, labels["bc"], version, "llm", "llm:judge", None, 0, None, False),
        (d1, labels["mi"], version, "sme", f"user:{sme}", sme, 2, 120.0, False),
        (d1, labels["card"], version, "sme", f"user:{sme}", sme, 2, 120.0, False),
        (d2, labels["bc"], version, "sme", f"user:{sme}", sme, 0, 30.0, True),
        (d1, labels["mi"], version, "sme", f"user:{other}", other, 1, 60.0, True),
    ]
    with db.session() as s:
        s.add_all([Rating(project_id=project_id, document_id=d, label_id=lab, model_version_id=v, kind=k, rater=r,
                          user_id=u, rating=x, seconds=sec, llm_shown=shown, explanation="e")
                   for d, lab, v, k, r, u, x, sec, shown in rows])


def empty_version(db, project_id: int, models_dir: Path, kind: str = "bicross", config: dict | None = None,
                  metrics: dict | None = None, activate: bool = False) -> int:
    """A registered model version whose bundle holds only a manifest (for flows that never load the model)."""
    from core.model.versions import register_version, write_bundle

    return register_version(db, project_id, kind, write_bundle(models_dir, project_id, kind, lambda folder: {}),
                            config or {}, metrics or {}, None, activate=activate)


def job_params(job) -> dict:
    """A job's own parameters, without the settings every job carries (``params["settings"]``)."""
    return {k: v for k, v in (job.params or {}).items() if k != "settings"}


def process_gone(pid: int) -> bool:
    """Whether a process has exited (a zombie waiting for whoever adopted it to reap it counts as gone)."""
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
