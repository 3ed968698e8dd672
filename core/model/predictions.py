"""Predicting labels for stored documents with a model version, and reading them back."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, insert, select

from core.data.catalog import documents
from core.errors import NotFound
from core.jobs import JobContext, job_handler
from core.model.labels import LabelRanker, Prediction
from core.model.loading import load_ranker
from core.model.versions import VersionView, active_version, list_versions
from storage.db import Database
from storage.models import PredictionRecord


def store_predictions(db: Database, version_id: int, doc_ids: Sequence[int],
                      rankings: Sequence[Sequence[Prediction]]) -> int:
    """Replace the version's predictions for these documents; returns rows written."""
    rows = [{"document_id": d, "label_id": p.label_id, "model_version_id": version_id, "rank": r + 1,
             "score": p.score, "bi_score": p.bi_score, "cross_score": p.cross_score}
            for d, preds in zip(doc_ids, rankings, strict=True) for r, p in enumerate(preds)]
    with db.session() as s:
        s.execute(delete(PredictionRecord).where(PredictionRecord.model_version_id == version_id,
                                                 PredictionRecord.document_id.in_(list(doc_ids))))
        if rows:
            s.execute(insert(PredictionRecord), rows)
    return len(rows)


def predict_split(db: Database, project_id: int, version: VersionView, ranker: LabelRanker, split: str | None = "test",
                  k: int = 10, batch: int = 16, progress=None) -> int:
    """Rank labels for every document of a split with one version and store them with that version."""
    docs = documents(db, project_id, split=split, with_gold=False)
    written = 0
    for s in range(0, len(docs), batch):
        chunk = docs[s:s + batch]
        written += store_predictions(db, version.id, [d.id for d in chunk], ranker.rank([d.text for d in chunk], k=k))
        if progress is not None:
            progress(min(1.0, (s + batch) / len(docs)), f"predicted {min(len(docs), s + batch)} of {len(docs)} documents")
    return written


def predictions_for(db: Database, document_id: int, version_id: int) -> list[PredictionRecord]:
    with db.session() as s:
        return list(s.scalars(select(PredictionRecord).where(PredictionRecord.document_id == document_id,
                                                             PredictionRecord.model_version_id == version_id)
                              .order_by(PredictionRecord.rank)))


@job_handler("predict_documents", "Predict labels for documents")
def predict_documents_job(ctx: JobContext) -> dict:
    """Predict a split's labels with a version (the active one unless ``version_id`` is given)."""

    wanted = ctx.params.get("version_id")
    version = (next((v for v in list_versions(ctx.db, ctx.project_id) if v.id == wanted), None) if wanted
               else active_version(ctx.db, ctx.project_id))
    if version is None:
        raise NotFound("No such model version (or no active version) to predict with.")
    ranker = load_ranker(version.path, ctx.settings.device)
    n = predict_split(ctx.db, ctx.project_id, version, ranker, ctx.params.get("split", "test"),
                      int(ctx.params.get("k", 10)), progress=ctx.progress)
    return {"version": version.name, "predictions": n}
