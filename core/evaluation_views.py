"""Read models for the Evaluate page."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from storage.db import Database
from storage.models import Document, DocumentLabel


@dataclass
class LabelFrequency:
    test_documents: int
    mean_labels: float
    labels_20plus: int
    labels_once: int
    frequencies: list[int]


def label_frequency(db: Database, project_id: int) -> LabelFrequency:
    """Documents per label over the project, and the test split's size and label cardinality."""
    with db.session() as s:
        docs = select(Document.id).where(Document.project_id == project_id, Document.removed.is_(False))
        freq = [n for _, n in s.execute(select(DocumentLabel.label_id, func.count())
                                        .where(DocumentLabel.document_id.in_(docs))
                                        .group_by(DocumentLabel.label_id)).all()]
        n_docs = s.scalar(select(func.count()).select_from(docs.subquery())) or 0
        test = s.scalar(select(func.count()).where(Document.project_id == project_id, Document.split == "test",
                                                   Document.removed.is_(False))) or 0
    return LabelFrequency(test, sum(freq) / n_docs if n_docs else 0.0, sum(1 for n in freq if n >= 20),
                          sum(1 for n in freq if n == 1), freq)
