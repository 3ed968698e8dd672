"""Read models for the Annotate page: documents with their labels."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from storage.db import Database
from storage.models import Document, DocumentLabel, Label


@dataclass
class DocumentWithLabels:
    id: int
    external_id: str
    title: str
    abstract: str
    keywords: list[str]
    labels: list[tuple[str, str]]


def split_counts(db: Database, project_id: int) -> dict[str, int]:
    """Number of (not removed) documents per split; documents without a split count as ``unsplit``."""
    with db.session() as s:
        rows = s.execute(select(func.coalesce(Document.split, "unsplit"), func.count())
                         .where(Document.project_id == project_id, Document.removed.is_(False))
                         .group_by(Document.split)).all()
    return {k: v for k, v in rows}


def document_with_labels(db: Database, project_id: int, split: str, offset: int) -> DocumentWithLabels | None:
    """The ``offset``-th document of a split (by id) with its assigned labels."""
    with db.session() as s:
        q = select(Document).where(Document.project_id == project_id, Document.removed.is_(False))
        q = q.where(Document.split.is_(None)) if split == "unsplit" else q.where(Document.split == split)
        doc = s.scalar(q.order_by(Document.id).offset(offset).limit(1))
        if doc is None:
            return None
        labels = s.execute(select(Label.pref_label, DocumentLabel.kind, DocumentLabel.source)
                           .join(Label, Label.id == DocumentLabel.label_id)
                           .where(DocumentLabel.document_id == doc.id).order_by(Label.pref_label)).all()
        return DocumentWithLabels(doc.id, doc.external_id, doc.title, doc.abstract, list(doc.keywords or []),
                                  [(name, f"{kind} ({src})") for name, kind, src in labels])
