"""LLM-assisted evaluation in the database: the judgment cache, and the bulk judging job over stored predictions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from core.config import Settings
from core.errors import XmtcError
from core.evaluation.judge import DEFAULT_PROMPT, JudgeDocument, Judgment, LLMJudge, OpenAIBackend, Usage
from core.jobs import JobContext, job_handler
from storage.db import Database
from storage.models import (
    RATER_LLM,
    Document,
    Label,
    LLMJudgment,
    ModelVersion,
    PredictionRecord,
    Rating,
)

JUDGE_PREDICTIONS = "judge_predictions"


def llm_rater(model: str) -> str:
    return f"llm:{model}"


class DbJudgmentCache:
    """The judge's cache in the ``llm_judgments`` table (shared by every job and worker on the database)."""

    def __init__(self, db: Database, project_id: int, model: str, prompt_version: str) -> None:
        self.db, self.project_id, self.model, self.prompt_version = db, project_id, model, prompt_version

    def get_many(self, keys: Sequence[str]) -> dict[str, Judgment]:
        with self.db.session() as s:
            rows = s.scalars(select(LLMJudgment).where(LLMJudgment.cache_key.in_(list(keys)))).all()
            return {r.cache_key: Judgment(r.label, r.rating, r.explanation, r.status) for r in rows}

    def put_many(self, items: dict[str, tuple[JudgeDocument, Judgment]]) -> None:
        if not items:
            return
        try:
            with self.db.session() as s:
                known = set(s.scalars(select(LLMJudgment.cache_key).where(LLMJudgment.cache_key.in_(list(items)))))
                s.add_all([LLMJudgment(project_id=self.project_id, cache_key=k, document_id=int(doc.key), label=j.label,
                                       model=self.model, prompt_version=self.prompt_version, rating=j.rating,
                                       explanation=j.explanation, status=j.status)
                           for k, (doc, j) in items.items() if k not in known])
        except IntegrityError:  # another worker cached the same judgment a moment ago: theirs stands
            pass


def make_judge(db: Database, project_id: int, settings: Settings, prompt_version: str = DEFAULT_PROMPT) -> LLMJudge:
    """The judge the settings describe, with the database cache and the configured prices."""
    backend = OpenAIBackend(settings.llm_model, settings.llm_base_url, settings.llm_api_key,
                            timeout_s=settings.llm_timeout_s, max_retries=settings.llm_max_retries)
    return LLMJudge(backend, DbJudgmentCache(db, project_id, settings.llm_model, prompt_version), prompt_version,
                    usage=Usage(price_in=settings.llm_price_in, price_out=settings.llm_price_out))


def judging_plan(db: Database, project_id: int, version_ids: Sequence[int], split: str = "test", max_documents: int = 100,
                 k: int = 10) -> tuple[list[JudgeDocument], dict[int, dict[str, dict[int, int]]]]:
    """The documents to judge and, per document, each label's name -> {version id: label id}.

    The same documents are judged for every version (the first ``max_documents`` that every chosen version
    predicted), so versions are compared on equal terms; each document's labels are the union of their top-``k``.

    Raises:
        XmtcError: no version chosen, or a version without predictions for the split.
    """
    if not version_ids:
        raise XmtcError("Choose at least one model version whose predictions the LLM should judge.")
    with db.session() as s:
        names = {}
        per_version: dict[int, set[int]] = {}
        for vid in version_ids:
            version = s.get(ModelVersion, vid)
            if version is None or version.project_id != project_id:
                raise XmtcError(f"Model version {vid} is not in this project.")
            names[vid] = f"v{version.number} ({version.kind})"
            per_version[vid] = set(s.scalars(
                select(PredictionRecord.document_id).join(Document, Document.id == PredictionRecord.document_id)
                .where(PredictionRecord.model_version_id == vid, Document.split == split,
                       Document.removed.is_(False)).distinct()))
            if not per_version[vid]:
                raise XmtcError(f"{names[vid]} has no predictions for the {split} split: predict them on the Model "
                                "page first.")
        common = sorted(set.intersection(*per_version.values()))[:max_documents]
        if not common:
            raise XmtcError("The chosen versions have no predicted document in common: predict the same split with each.")
        docs = {d.id: JudgeDocument(d.id, d.title or "", d.abstract or "", tuple(d.keywords or ()))
                for d in s.scalars(select(Document).where(Document.id.in_(common)))}
        labels: dict[int, dict[str, dict[int, int]]] = {d: {} for d in common}
        for doc_id, vid, label_id, name in s.execute(
                select(PredictionRecord.document_id, PredictionRecord.model_version_id, Label.id, Label.pref_label)
                .join(Label, Label.id == PredictionRecord.label_id)
                .where(PredictionRecord.model_version_id.in_(list(version_ids)), PredictionRecord.document_id.in_(common),
                       PredictionRecord.rank <= k)
                .order_by(PredictionRecord.document_id, PredictionRecord.rank, PredictionRecord.model_version_id)):
            labels[doc_id].setdefault(name, {})[vid] = label_id
    return [docs[d] for d in common], labels


def store_llm_ratings(db: Database, project_id: int, model: str, doc: JudgeDocument, judgments: Sequence[Judgment],
                      labels: dict[str, dict[int, int]]) -> int:
    """Write the rated judgments of one document as LLM ratings of each version that predicted the label."""
    rater = llm_rater(model)
    rows = [Rating(project_id=project_id, document_id=int(doc.key), label_id=label_id, model_version_id=vid,
                   kind=RATER_LLM, rater=rater, rating=j.rating, explanation=j.explanation)
            for j in judgments if j.rated for vid, label_id in labels[j.label].items()]
    with db.session() as s:
        s.execute(delete(Rating).where(Rating.document_id == int(doc.key), Rating.rater == rater,
                                       Rating.model_version_id.in_({v for m in labels.values() for v in m})))
        s.add_all(rows)
    return len(rows)


@job_handler(JUDGE_PREDICTIONS, "LLM judges predicted labels")
def judge_predictions_job(ctx: JobContext) -> dict[str, Any]:
    """Judge the top-k predictions of one or more versions on a split; progress shows the cost so far."""
    settings = ctx.settings
    prompt_version = ctx.params.get("prompt_version", DEFAULT_PROMPT)
    docs, labels = judging_plan(ctx.db, ctx.project_id, [int(v) for v in ctx.params.get("version_ids", [])],
                                ctx.params.get("split", "test"), int(ctx.params.get("max_documents", 100)),
                                int(ctx.params.get("k", 10)))
    judge = make_judge(ctx.db, ctx.project_id, settings, prompt_version)
    counts = {"rated": 0, "unrated": 0, "not_judged": 0}
    done = 0

    def on_done(doc: JudgeDocument, judgments: list[Judgment]) -> None:
        nonlocal done
        done += 1
        for j in judgments:
            counts["rated" if j.rated else "unrated" if j.final else "not_judged"] += 1
        store_llm_ratings(ctx.db, ctx.project_id, settings.llm_model, doc, judgments, labels[int(doc.key)])
        u = judge.usage
        ctx.progress(done / len(docs), f"judged {done} of {len(docs)} documents · {u.calls} calls · "
                     f"{u.prompt_tokens + u.completion_tokens:,} tokens · cost so far {u.cost:.4f} · "
                     f"{u.cached_labels} labels from the cache", force=done == len(docs))

    ctx.progress(0.0, f"judging {len(docs)} documents with {settings.llm_model}", force=True)
    # A cancel is checked before each document: no new request starts, what was paid for is cached and stored.
    judge.judge_many([(d, list(labels[int(d.key)])) for d in docs], settings.llm_concurrency, on_done, ctx.cancelled)
    ctx.check_cancel()
    report = (f"{counts['rated']} labels rated, {counts['unrated']} unrated, {counts['not_judged']} not judged "
              f"(timeouts or rate limits: run again to retry them); {judge.usage.calls} LLM calls, cost {judge.usage.cost:.4f}")
    return {"documents": len(docs), **counts, **judge.usage.as_dict(), "model": settings.llm_model,
            "prompt_version": prompt_version, "report": report}
