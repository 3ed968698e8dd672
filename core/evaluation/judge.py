"""LLM-as-judge: an LLM rates each predicted label of a document 0/1/2 with a one-sentence explanation."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.errors import XmtcError

RATED = "rated"
UNRATED = "unrated"
SCORES = (0, 1, 2)


class LLMUnavailable(XmtcError):
    """The LLM cannot be used at all (bad key, unknown model, server unreachable): nothing more is asked."""


class LLMTransient(XmtcError):
    """One request failed after the client's retries (timeout, 429, 5xx): its labels stay unjudged for now."""


@dataclass(frozen=True)
class PromptTemplate:
    """A versioned prompt. The document comes first so servers can reuse its prefix across questions."""

    version: str
    system: str
    document: str
    topics: str
    reask: str

    def messages(self, title: str, abstract: str, keywords: Sequence[str], labels: Sequence[str],
                 reask: bool = False) -> list[dict[str, str]]:
        doc = self.document.format(title=title or "(no title)", abstract=abstract or "(no abstract)",
                                   keywords="; ".join(keywords) or "(none)")
        listed = "\n".join(f"{i}. {name}" for i, name in enumerate(labels, start=1))
        ask = (self.reask if reask else self.topics).format(topics=listed, n=len(labels))
        return [{"role": "system", "content": self.system}, {"role": "user", "content": f"{doc}\n\n{ask}"}]


PROMPTS: dict[str, PromptTemplate] = {
    "judge-v1": PromptTemplate(
        version="judge-v1",
        system=("You are an expert indexer of scientific and engineering literature. You judge whether subject "
                "labels (topics) of a controlled vocabulary describe a document. Answer with JSON only."),
        document="Document\nTitle: {title}\nAbstract: {abstract}\nKeywords: {keywords}",
        topics=("Which of these {n} topics are relevant to this document? Score each topic 0 (irrelevant), "
                "1 (somewhat relevant) or 2 (highly relevant), with a one-sentence explanation.\n\nTopics:\n{topics}\n\n"
                'Answer as JSON: {{"ratings": [{{"topic": <number>, "score": <0, 1 or 2>, '
                '"explanation": "<one short sentence>"}}, ...]}} with exactly one entry per topic, in the order given.'),
        reask=("Your previous answer missed or garbled some topics. Score ONLY these {n} topics 0 (irrelevant), "
               "1 (somewhat relevant) or 2 (highly relevant), with a one-sentence explanation.\n\nTopics:\n{topics}\n\n"
               'Answer as JSON: {{"ratings": [{{"topic": <number>, "score": <0, 1 or 2>, '
               '"explanation": "<one short sentence>"}}, ...]}} with exactly one entry per topic.'),
    ),
}
DEFAULT_PROMPT = "judge-v1"

# Topics are identified by number (repeating names would double what a small model must write on a CPU);
# replies that name them instead are understood too.
RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ratings": {"type": "array", "items": {
        "type": "object",
        "properties": {"topic": {"type": "integer"}, "score": {"type": "integer", "enum": list(SCORES)},
                       "explanation": {"type": "string"}},
        "required": ["topic", "score", "explanation"], "additionalProperties": False}}},
    "required": ["ratings"], "additionalProperties": False,
}


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatBackend(Protocol):
    """Sends chat messages to an LLM and returns its text (strategy seam; tests use a scripted one)."""

    model: str

    def complete(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> Completion:
        """One chat completion at temperature 0, asked for JSON matching ``schema`` where the server can.

        Raises:
            LLMUnavailable: the server refuses us for good (key, model, address).
            LLMTransient: this request failed after retries (timeout, rate limit, server error).
        """
        ...


class OpenAIBackend:
    """The official ``openai`` client against OpenAI or any OpenAI-compatible server (vLLM, llama.cpp, Ollama).

    Retries with exponential backoff on 408/409/429/5xx and connection errors are the client's own
    (``max_retries``; it honours ``Retry-After``). Structured output degrades from JSON schema to JSON mode
    to plain text when a server rejects the ``response_format`` it does not support.
    """

    # llama.cpp's server takes a schema inside json_object (a grammar); OpenAI's takes json_schema.
    MODES = ("json_schema", "json_object_schema", "json_object", "text")

    def __init__(self, model: str, base_url: str = "", api_key: str = "", timeout_s: float = 60.0,
                 max_retries: int = 3, client: Any = None) -> None:
        import openai

        if not model:
            raise LLMUnavailable("No LLM model is configured: set XMTC_LLM_MODEL (and XMTC_LLM_BASE_URL for a local "
                                 "OpenAI-compatible server).")
        self.model = model
        self.base_url = base_url or "https://api.openai.com/v1"
        # A local server needs no key, but the client insists on one: a placeholder is never a real secret.
        self.client = client or openai.OpenAI(base_url=base_url or None, api_key=api_key or "no-key",
                                              timeout=timeout_s, max_retries=max_retries)
        self.timeout_s = timeout_s
        self._mode = 0
        self._lock = threading.Lock()

    def _response_format(self, mode: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "ratings", "schema": schema, "strict": True}}
        if mode == "json_object_schema":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_object"} if mode == "json_object" else None

    def _degrade(self, mode: str) -> None:
        with self._lock:  # this server does not take this response_format: ask more plainly from now on
            self._mode = max(self._mode, self.MODES.index(mode) + 1)

    def complete(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> Completion:
        import openai

        while True:
            mode = self.MODES[self._mode]
            kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0}
            fmt = self._response_format(mode, schema)
            if fmt is not None:
                kwargs["response_format"] = fmt
            try:
                reply = self.client.chat.completions.create(**kwargs)
            except openai.AuthenticationError as exc:
                raise LLMUnavailable(f"The LLM at {self.base_url} rejected the API key ({exc.status_code}): set a valid "
                                     "XMTC_LLM_API_KEY in the environment or .streamlit/secrets.toml.") from None
            except openai.PermissionDeniedError as exc:
                raise LLMUnavailable(f"The LLM at {self.base_url} refused access ({exc.status_code}); check the key's "
                                     "permissions.") from None
            except openai.NotFoundError:
                raise LLMUnavailable(f"The LLM at {self.base_url} does not know the model {self.model!r} (404): set "
                                     "XMTC_LLM_MODEL to a model it serves.") from None
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                if fmt is not None:
                    self._degrade(mode)
                    continue
                raise LLMTransient(f"The LLM rejected the request ({exc.status_code}): {_short(exc)}") from None
            except openai.APITimeoutError:
                raise LLMTransient(f"The LLM did not answer within {self.timeout_s:g} s (after retries).") from None
            except openai.RateLimitError:
                raise LLMTransient("The LLM kept answering 429 (rate limit) after retries with backoff.") from None
            except openai.InternalServerError as exc:
                if fmt is not None and "response_format" in str(exc):  # e.g. llama-cpp-python answers 500 here
                    self._degrade(mode)
                    continue
                raise LLMTransient(f"The LLM server failed ({exc.status_code}) after retries.") from None
            except openai.APIConnectionError:
                raise LLMUnavailable(f"Cannot reach the LLM at {self.base_url}: is the server running, and is "
                                     "XMTC_LLM_BASE_URL right?") from None
            except openai.APIStatusError as exc:
                raise LLMTransient(f"The LLM answered HTTP {exc.status_code}: {_short(exc)}") from None
            usage = getattr(reply, "usage", None)
            text = (reply.choices[0].message.content or "") if reply.choices else ""
            return Completion(text, int(getattr(usage, "prompt_tokens", 0) or 0),
                              int(getattr(usage, "completion_tokens", 0) or 0))


def _short(exc: Exception) -> str:
    return str(getattr(exc, "message", exc))[:200]


@dataclass(frozen=True)
class JudgeDocument:
    """What the judge sees of a document (``key``: the caller's id, e.g. the document row id)."""

    key: int | str
    title: str
    abstract: str
    keywords: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        text = json.dumps([self.title, self.abstract, list(self.keywords)], ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Judgment:
    """One label's verdict: a score 0/1/2 with its explanation, or unrated with the reason.

    ``final`` is False for failures that a later run should try again (timeouts, rate limits); those are
    never cached.
    """

    label: str
    rating: int | None
    explanation: str
    status: str = RATED
    final: bool = True

    @property
    def rated(self) -> bool:
        return self.status == RATED


def cache_key(doc: JudgeDocument, label: str, model: str, prompt_version: str) -> str:
    """The cache key of a judgment: the document's text, the label, the model and the prompt version."""
    raw = json.dumps([doc.digest, label, model, prompt_version], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class JudgmentCache(Protocol):
    """Where judgments are kept so that nothing is paid for twice."""

    def get_many(self, keys: Sequence[str]) -> dict[str, Judgment]: ...

    def put_many(self, items: dict[str, tuple[JudgeDocument, Judgment]]) -> None: ...


class MemoryCache:
    """A judgment cache in a dict (scripts and tests; the app keeps its cache in the database)."""

    def __init__(self) -> None:
        self.items: dict[str, Judgment] = {}

    def get_many(self, keys: Sequence[str]) -> dict[str, Judgment]:
        return {k: self.items[k] for k in keys if k in self.items}

    def put_many(self, items: dict[str, tuple[JudgeDocument, Judgment]]) -> None:
        self.items.update({k: j for k, (_, j) in items.items()})


@dataclass
class Usage:
    """Calls, tokens and cost so far (prices per million tokens; 0 for a local server)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_labels: int = 0
    price_in: float = 0.0
    price_out: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, c: Completion) -> None:
        with self._lock:
            self.calls += 1
            self.prompt_tokens += c.prompt_tokens
            self.completion_tokens += c.completion_tokens

    @property
    def cost(self) -> float:
        return (self.prompt_tokens * self.price_in + self.completion_tokens * self.price_out) / 1e6

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cached_labels": self.cached_labels, "cost": round(self.cost, 6)}


_JSON_START = re.compile(r"[\[{]")


def extract_json(text: str) -> Any:
    """The first JSON object or array in ``text``: bare, in a code fence, or inside prose. None if there is none."""
    decoder = json.JSONDecoder()
    for match in _JSON_START.finditer(text or ""):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict | list):
            return value
    return None


def _entries(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        for key in ("ratings", "topics", "labels", "results", "scores"):
            if isinstance(value.get(key), list):
                value = value[key]
                break
        else:
            value = [value] if any(k in value for k in ("score", "rating", "relevance")) else []
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def _score(entry: dict[str, Any]) -> int | None:
    for key in ("score", "rating", "relevance"):
        raw = entry.get(key)
        if isinstance(raw, bool):
            return None
        if isinstance(raw, int) or (isinstance(raw, float) and raw.is_integer()):
            return int(raw)
        if isinstance(raw, str) and raw.strip().isdigit():
            return int(raw.strip())
    return None


def _which(entry: dict[str, Any], labels: Sequence[str]) -> int | None:
    """The position of the label an entry speaks about: by its name first, else by its number."""
    by_name = {n.strip().lower(): i for i, n in enumerate(labels)}
    for key in ("label", "name", "topic"):
        raw = entry.get(key)
        if isinstance(raw, str) and raw.strip().lower() in by_name:
            return by_name[raw.strip().lower()]
    for key in ("topic", "id", "index", "number"):
        raw = entry.get(key)
        if isinstance(raw, str) and raw.strip().isdigit():
            raw = int(raw.strip())
        if isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= len(labels):
            return raw - 1
    return None


def parse_ratings(text: str, labels: Sequence[str]) -> dict[int, tuple[int, str]]:
    """The valid (score, explanation) per label position in an LLM's reply.

    A label is left out, to be asked again, when the reply omits it, scores it off the 0/1/2 scale,
    or rates it twice with different scores. Nothing is guessed.
    """
    seen: dict[int, list[tuple[int | None, str]]] = {}
    for entry in _entries(extract_json(text)):
        pos = _which(entry, labels)
        if pos is not None:
            seen.setdefault(pos, []).append((_score(entry), str(entry.get("explanation") or entry.get("reason") or "")))
    out: dict[int, tuple[int, str]] = {}
    for pos, verdicts in seen.items():
        scores = {s for s, _ in verdicts}
        if len(scores) == 1 and (score := scores.pop()) in SCORES:
            out[pos] = (score, next((e for _, e in verdicts if e), "").strip())
    return out


class LLMJudge:
    """Rates a document's labels with an LLM: cache first, one prompt per document, then re-asks.

    Args:
        backend: the LLM (see :class:`ChatBackend`).
        cache: judgments already paid for.
        prompt_version: a key of :data:`PROMPTS`.
        reasks: how many more prompts a document gets for the labels its reply left unrated.
    """

    def __init__(self, backend: ChatBackend, cache: JudgmentCache | None = None, prompt_version: str = DEFAULT_PROMPT,
                 reasks: int = 1, usage: Usage | None = None) -> None:
        if prompt_version not in PROMPTS:
            raise XmtcError(f"Unknown prompt version {prompt_version!r}; known: {', '.join(PROMPTS)}.")
        self.backend, self.template = backend, PROMPTS[prompt_version]
        self.cache = cache if cache is not None else MemoryCache()
        self.reasks = reasks
        self.usage = usage or Usage()

    def key(self, doc: JudgeDocument, label: str) -> str:
        return cache_key(doc, label, self.backend.model, self.template.version)

    def judge(self, doc: JudgeDocument, labels: Sequence[str]) -> list[Judgment]:
        """One judgment per label, in order (cached ones cost nothing).

        Raises:
            LLMUnavailable: the LLM cannot be used at all.
        """
        labels = list(dict.fromkeys(labels))
        keys = {lab: self.key(doc, lab) for lab in labels}
        hits = self.cache.get_many(list(keys.values()))
        done = {lab: hits[k] for lab, k in keys.items() if k in hits}
        with self.usage._lock:
            self.usage.cached_labels += len(done)
        todo = [lab for lab in labels if lab not in done]
        fresh: dict[str, Judgment] = {}
        for attempt in range(self.reasks + 1):
            if not todo:
                break
            messages = self.template.messages(doc.title, doc.abstract, doc.keywords, todo, reask=attempt > 0)
            try:
                completion = self.backend.complete(messages, RESPONSE_SCHEMA)
            except LLMTransient as exc:
                fresh.update({lab: Judgment(lab, None, str(exc), UNRATED, final=False) for lab in todo})
                todo = []
                break
            self.usage.add(completion)
            parsed = parse_ratings(completion.text, todo)
            fresh.update({todo[p]: Judgment(todo[p], s, e) for p, (s, e) in parsed.items()})
            todo = [lab for p, lab in enumerate(todo) if p not in parsed]
        for lab in todo:
            fresh[lab] = Judgment(lab, None, f"the LLM gave no valid 0/1/2 score after {self.reasks + 1} prompt(s)",
                                  UNRATED)
        self.cache.put_many({keys[lab]: (doc, j) for lab, j in fresh.items() if j.final})
        return [done.get(lab) or fresh[lab] for lab in labels]

    def judge_many(self, items: Iterable[tuple[JudgeDocument, Sequence[str]]], concurrency: int = 4,
                   on_done: Callable[[JudgeDocument, list[Judgment]], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> dict[Any, list[Judgment]]:
        """Judge many documents with at most ``concurrency`` requests in flight; ``on_done`` runs in this thread.

        ``should_stop`` is asked before each document: once it says yes (or ``on_done`` raises), no new
        request starts; the documents judged so far are returned (and cached).
        """
        items = list(items)
        out: dict[Any, list[Judgment]] = {}
        stopping = threading.Event()  # set when ``on_done`` raises (e.g. a cancel): no new request starts

        def one(doc: JudgeDocument, labels: Sequence[str]) -> list[Judgment] | None:
            if stopping.is_set() or (should_stop is not None and should_stop()):
                stopping.set()
                return None
            return self.judge(doc, labels)

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = {pool.submit(one, doc, labels): doc for doc, labels in items}
            try:
                for future in as_completed(futures):
                    doc, result = futures[future], future.result()
                    if result is None:
                        continue
                    out[doc.key] = result
                    if on_done is not None:
                        on_done(doc, result)
            except BaseException:
                stopping.set()
                for f in futures:
                    f.cancel()
                raise
        return out
