"""Read-side queries of a project's labels and documents as plain objects for the ML code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, func, select

from core.corpus import document_text
from core.taxonomy import LabelRow
from storage.db import Database
from storage.models import ASSIGNMENT_GOLD, Document, DocumentLabel, Label, LabelParent


@dataclass
class DocRow:
    """A document's text and gold label row ids."""

    id: int
    external_id: str
    text: str
    split: str | None
    gold: list[int] = field(default_factory=list)


def servable_labels(db: Database, project_id: int) -> list[LabelRow]:
    """Labels that may be predicted: not deprecated and not removed, ordered by row id."""
    with db.session() as s:
        labels = s.execute(
            select(Label.id, Label.external_id, Label.pref_label, Label.alt_labels, Label.description)
            .where(Label.project_id == project_id, Label.deprecated.is_(False), Label.removed_in_version_id.is_(None))
            .order_by(Label.id)
        ).all()
        parents: dict[int, list[int]] = {}
        for child, parent in s.execute(
            select(LabelParent.child_id, LabelParent.parent_id)
            .join(Label, Label.id == LabelParent.child_id).where(Label.project_id == project_id)
        ):
            parents.setdefault(child, []).append(parent)
    return [LabelRow(i, ext, pref, tuple(alts or ()), tuple(sorted(parents.get(i, ()))), desc or "")
            for i, ext, pref, alts, desc in labels]


def documents(db: Database, project_id: int, split: str | None = None, with_gold: bool = True) -> list[DocRow]:
    """Documents (not removed) with their gold labels; ``split`` filters (e.g. ``train``)."""
    with db.session() as s:
        q = select(Document.id, Document.external_id, Document.title, Document.abstract, Document.keywords,
                   Document.split).where(Document.project_id == project_id, Document.removed.is_(False))
        if split is not None:
            q = q.where(Document.split == split)
        docs = {i: DocRow(i, ext, document_text(t, a, k), sp) for i, ext, t, a, k, sp in s.execute(q.order_by(Document.id))}
        if with_gold and docs:
            for doc_id, label_id in s.execute(
                select(DocumentLabel.document_id, DocumentLabel.label_id)
                .join(Document, Document.id == DocumentLabel.document_id)
                .where(Document.project_id == project_id, DocumentLabel.kind == ASSIGNMENT_GOLD)
            ):
                if doc_id in docs:
                    docs[doc_id].gold.append(label_id)
    return list(docs.values())


@dataclass
class LabelDetail:
    """One label with its hierarchy context and usage."""

    id: int
    external_id: str
    pref_label: str
    alt_labels: list[str]
    description: str
    deprecated: bool
    replaced_by: str | None
    paths: list[list[str]]
    children: list[str]
    documents: int
    extra: dict


def search_labels(db: Database, project_id: int, text: str, limit: int = 50) -> list[tuple[int, str, str]]:
    """Labels whose preferred name, id or alternative names contain ``text`` (case-insensitive).

    Returns:
        (row id, stable id, preferred name), exact and prefix matches first.
    """
    needle = text.strip().lower()
    if not needle:
        return []
    pattern = f"%{needle}%"
    with db.session() as s:
        rows = s.execute(
            select(Label.id, Label.external_id, Label.pref_label).where(
                Label.project_id == project_id,
                (func.lower(Label.pref_label).like(pattern)) | (func.lower(Label.external_id) == needle)
                | (func.lower(func.cast(Label.alt_labels, String)).like(pattern)),
            ).limit(limit * 4)
        ).all()
    rows.sort(key=lambda r: (r[2].lower() != needle, not r[2].lower().startswith(needle), len(r[2]), r[2]))
    return [tuple(r) for r in rows[:limit]]


def label_paths(parents: dict[int, list[int]], names: dict[int, str], label_id: int, limit: int = 20) -> list[list[str]]:
    """Every root-to-label path through the poly-hierarchy (at most ``limit``)."""
    paths: list[list[str]] = []
    stack: list[list[int]] = [[label_id]]
    while stack and len(paths) < limit:
        path = stack.pop()
        ups = [p for p in parents.get(path[0], []) if p not in path]
        if not ups:
            paths.append([names.get(i, str(i)) for i in path])
        stack.extend([p, *path] for p in ups)
    return sorted(paths)


def _ancestry(session: Any, label_ids: list[int]) -> tuple[dict[int, list[int]], dict[int, str]]:
    """Parent lists and names of the given labels and all their ancestors (a recursive query, not the whole tree)."""
    up = select(LabelParent.child_id, LabelParent.parent_id).where(LabelParent.child_id.in_(label_ids)).cte(recursive=True)
    up = up.union(select(LabelParent.child_id, LabelParent.parent_id).join(up, LabelParent.child_id == up.c.parent_id))
    parents: dict[int, list[int]] = {}
    for c, p in session.execute(select(up.c.child_id, up.c.parent_id)):
        parents.setdefault(c, []).append(p)
    ids = set(label_ids) | {p for ps in parents.values() for p in ps}
    names = dict(session.execute(select(Label.id, Label.pref_label).where(Label.id.in_(ids))).all())
    return parents, names


def label_places(db: Database, project_id: int, label_ids: list[int], max_paths: int = 3) -> dict[int, tuple[str, list[str]]]:
    """Name and root-to-label paths (as "A > B > C") of several labels at once."""
    with db.session() as s:
        parents, names = _ancestry(s, label_ids)
    return {i: (names.get(i, str(i)), [" > ".join(p) for p in label_paths(parents, names, i, max_paths)])
            for i in label_ids}


def label_detail(db: Database, project_id: int, label_id: int) -> LabelDetail | None:
    """A label with all its paths from the roots, its children and how many documents carry it."""
    with db.session() as s:
        label = s.get(Label, label_id)
        if label is None or label.project_id != project_id:
            return None
        parents, names = _ancestry(s, [label_id])
        children = s.scalars(select(Label.pref_label).join(LabelParent, LabelParent.child_id == Label.id)
                             .where(LabelParent.parent_id == label_id)).all()
        docs = s.scalar(select(func.count(func.distinct(DocumentLabel.document_id)))
                        .where(DocumentLabel.label_id == label_id))
        return LabelDetail(label.id, label.external_id, label.pref_label, list(label.alt_labels or []),
                           label.description, label.deprecated, label.replaced_by,
                           label_paths(parents, names, label_id), sorted(children), docs or 0,
                           dict(label.extra or {}))
