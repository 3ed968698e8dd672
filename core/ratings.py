"""Test-set rating: SMEs (and, later, an LLM) rate each of a version's top-10 labels for a document 0/1/2."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.errors import XmtcError
from storage.db import Database
from storage.models import RATER_LLM, RATER_SME, Document, Label, PredictionRecord, Rating

SCALE = {0: "0 irrelevant", 1: "1 somewhat relevant", 2: "2 highly relevant"}


def sme_rater(user_id: int) -> str:
    return f"user:{user_id}"


@dataclass(frozen=True)
class RatingTask:
    """A test document with a version's predicted labels to rate (and the LLM's ratings, if any)."""

    document_id: int
    external_id: str
    title: str
    abstract: str
    keywords: list[str]
    labels: list[tuple[int, str]]  # (label id, name), best first
    llm: dict[int, tuple[int, str]]  # label id -> (rating, explanation)


def next_to_rate(db: Database, project_id: int, version_id: int, user_id: int) -> RatingTask | None:
    """A test document the version has predictions for and this SME has not rated (fewest ratings first)."""
    with db.session() as s:
        predicted = (select(PredictionRecord.document_id).where(PredictionRecord.model_version_id == version_id)
                     .distinct().subquery())
        mine = select(Rating.document_id).where(Rating.model_version_id == version_id,
                                                 Rating.rater == sme_rater(user_id))
        rated = (select(Rating.document_id, func.count(func.distinct(Rating.rater)).label("n"))
                 .where(Rating.model_version_id == version_id, Rating.kind == RATER_SME)
                 .group_by(Rating.document_id).subquery())
        doc = s.scalar(select(Document).join(predicted, predicted.c.document_id == Document.id)
                       .outerjoin(rated, rated.c.document_id == Document.id)
                       .where(Document.project_id == project_id, Document.split == "test",
                              Document.removed.is_(False), Document.id.not_in(mine))
                       .order_by(func.coalesce(rated.c.n, 0), Document.id).limit(1))
        if doc is None:
            return None
        labels = s.execute(select(Label.id, Label.pref_label).join(PredictionRecord, PredictionRecord.label_id == Label.id)
                           .where(PredictionRecord.model_version_id == version_id,
                                  PredictionRecord.document_id == doc.id)
                           .order_by(PredictionRecord.rank).limit(10)).all()
        llm = {lab: (r, e) for lab, r, e in s.execute(
            select(Rating.label_id, Rating.rating, Rating.explanation)
            .where(Rating.model_version_id == version_id, Rating.document_id == doc.id, Rating.kind == RATER_LLM)
            .order_by(Rating.id))}
        return RatingTask(doc.id, doc.external_id, doc.title or "", doc.abstract or "", list(doc.keywords or []),
                          [(i, n) for i, n in labels], llm)


def rate_document(db: Database, project_id: int, version_id: int, task: RatingTask, user_id: int,
                  ratings: Mapping[int, int | None], seconds: float | None, llm_shown: bool) -> int:
    """Store an SME's ratings of every predicted label of a document, all or nothing.

    Raises:
        XmtcError: a label left unrated, a value off the 0/1/2 scale, or the document already rated by
            this SME (e.g. a second tab): the stored ratings stand.
    """
    expected = {lab for lab, _ in task.labels}
    missing = [name for lab, name in task.labels if ratings.get(lab) is None]
    if missing:
        raise XmtcError(f"Rate every label before saving; still unrated: {', '.join(missing[:5])}.")
    if set(ratings) - expected or any(ratings[lab] not in SCALE for lab in expected):
        raise XmtcError("Ratings are 0, 1 or 2 for the labels shown.")
    try:
        with db.session() as s:
            s.add_all([Rating(project_id=project_id, document_id=task.document_id, label_id=lab,
                              model_version_id=version_id, kind=RATER_SME, rater=sme_rater(user_id), user_id=user_id,
                              rating=int(ratings[lab]), seconds=seconds, llm_shown=llm_shown) for lab in expected])
    except IntegrityError:
        raise XmtcError("You rated this document already (perhaps in another tab); those ratings stand.") from None
    return len(expected)


def seconds_since(start: dt.datetime | None, now: dt.datetime) -> float | None:
    return None if start is None else max(0.0, (now - start).total_seconds())
