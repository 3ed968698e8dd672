"""Test-set rating: SMEs verify (or rate blind) each of a version's top-10 labels for a document 0/1/2."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.errors import XmtcError
from storage.db import Database
from storage.models import RATER_LLM, RATER_SME, Document, Label, ModelVersion, PredictionRecord, Rating

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


def next_to_rate(db: Database, project_id: int, version_id: int, user_id: int, k: int = 10) -> RatingTask | None:
    """A test document with top-``k`` labels of the version this SME has not rated yet (fewest raters first).

    A label the SME rated for the document under another version is not asked again: a rating judges a
    (document, label) pair, whichever model proposed it. The LLM's ratings come with it, from any version.
    """
    me = sme_rater(user_id)
    with db.session() as s:
        unrated = (select(PredictionRecord.document_id)
                   .where(PredictionRecord.model_version_id == version_id, PredictionRecord.rank <= k,
                          ~select(Rating.id).where(Rating.rater == me, Rating.document_id == PredictionRecord.document_id,
                                                   Rating.label_id == PredictionRecord.label_id).exists())
                   .distinct().subquery())
        rated = (select(Rating.document_id, func.count(func.distinct(Rating.rater)).label("n"))
                 .where(Rating.model_version_id == version_id, Rating.kind == RATER_SME)
                 .group_by(Rating.document_id).subquery())
        doc = s.scalar(select(Document).join(unrated, unrated.c.document_id == Document.id)
                       .outerjoin(rated, rated.c.document_id == Document.id)
                       .where(Document.project_id == project_id, Document.split == "test", Document.removed.is_(False))
                       .order_by(func.coalesce(rated.c.n, 0), Document.id).limit(1))
        if doc is None:
            return None
        mine = set(s.scalars(select(Rating.label_id).where(Rating.rater == me, Rating.document_id == doc.id)))
        labels = [(i, n) for i, n in s.execute(
            select(Label.id, Label.pref_label).join(PredictionRecord, PredictionRecord.label_id == Label.id)
            .where(PredictionRecord.model_version_id == version_id, PredictionRecord.document_id == doc.id,
                   PredictionRecord.rank <= k).order_by(PredictionRecord.rank)) if i not in mine]
        llm = {lab: (r, e) for lab, r, e in s.execute(
            select(Rating.label_id, Rating.rating, Rating.explanation)
            .where(Rating.document_id == doc.id, Rating.kind == RATER_LLM, Rating.label_id.in_([i for i, _ in labels]))
            .order_by(Rating.id))}
        return RatingTask(doc.id, doc.external_id, doc.title or "", doc.abstract or "", list(doc.keywords or []),
                          labels, llm)


def versions_with_predictions(db: Database, project_id: int, split: str = "test") -> list[tuple[int, str]]:
    """Model versions that have predictions for a split, newest first, as (id, name)."""
    with db.session() as s:
        rows = s.execute(select(ModelVersion.id, ModelVersion.number, ModelVersion.kind)
                         .where(ModelVersion.project_id == project_id,
                                select(PredictionRecord.id).join(Document, Document.id == PredictionRecord.document_id)
                                .where(PredictionRecord.model_version_id == ModelVersion.id, Document.split == split)
                                .exists())
                         .order_by(ModelVersion.number.desc())).all()
    return [(i, f"v{n} ({kind})") for i, n, kind in rows]


def disagreements(task: RatingTask, ratings: Mapping[int, int | None]) -> tuple[int, list[str]]:
    """After a blind rating: how many labels the LLM rated, and where it differed from the SME."""
    names = dict(task.labels)
    both = [lab for lab in names if lab in task.llm and ratings.get(lab) is not None]
    return len(both), [f"{names[lab]}: you {ratings[lab]}, LLM {task.llm[lab][0]} ({task.llm[lab][1]})"
                       for lab in both if task.llm[lab][0] != ratings[lab]]


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
