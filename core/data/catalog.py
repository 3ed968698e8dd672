"""Read-side queries of a project's labels and documents as plain objects for the ML code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, func, select
from sqlalchemy.orm import aliased

from core.data.concepts import LabelRow
from core.data.corpus import document_text
from storage.db import Database
from storage.models import (
    ASSIGNMENT_GOLD,
    CAMPAIGN_STOPPED,
    Campaign,
    CampaignLabel,
    Document,
    DocumentLabel,
    Label,
    LabelParent,
    PredictionRecord,
    TaxonomyVersion,
)

TEST_SPLIT = "test"  # held out: measured on, never trained on, never asked about
CORPUS_SPLIT = "corpus"  # copied in from a pool corpus (no gold of its own): asked about, not a training document


@dataclass
class DocRow:
    """A document's text and gold label row ids."""

    id: int
    external_id: str
    text: str
    split: str | None
    gold: list[int] = field(default_factory=list)

    @property
    def trains(self) -> bool:
        """Whether a model trains on it: not held out, and not a pool corpus's copy without gold."""
        return self.split != TEST_SPLIT and (self.split != CORPUS_SPLIT or bool(self.gold))


def servable_labels(db: Database, project_id: int) -> list[LabelRow]:
    """Labels that may be predicted: not deprecated, not removed and not a grouping node (e.g. MeSH's top
    categories, ``extra["grouping"]``), ordered by row id."""
    with db.session() as s:
        labels = [row[:5] for row in s.execute(
            select(Label.id, Label.external_id, Label.pref_label, Label.alt_labels, Label.description, Label.extra)
            .where(Label.project_id == project_id, Label.deprecated.is_(False), Label.removed_in_version_id.is_(None))
            .order_by(Label.id)
        ) if not (row[5] or {}).get("grouping")]
        parents: dict[int, list[int]] = {}
        for child, parent in s.execute(
            select(LabelParent.child_id, LabelParent.parent_id)
            .join(Label, Label.id == LabelParent.child_id).where(Label.project_id == project_id)
        ):
            parents.setdefault(child, []).append(parent)
    return [LabelRow(i, ext, pref, tuple(alts or ()), tuple(sorted(parents.get(i, ()))), desc or "")
            for i, ext, pref, alts, desc in labels]


def training_pairs(db: Database, project_id: int) -> int:
    """Gold (document, label) pairs outside the test split: what one bi-encoder epoch learns from."""
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(DocumentLabel).join(Document, Document.id == DocumentLabel.document_id)
                        .where(Document.project_id == project_id, Document.removed.is_(False),
                               func.coalesce(Document.split, "") != "test",
                               DocumentLabel.source == ASSIGNMENT_GOLD)) or 0


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
    """One label with its hierarchy context, usage and status."""

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
    path_ids: list[list[int]] = field(default_factory=list)
    child_ids: list[int] = field(default_factory=list)
    removed_in: str | None = None  # the taxonomy version that removed it
    added_in: str | None = None  # the version that added it, when not the first one (or "by hand")
    campaigns: list[str] = field(default_factory=list)  # running campaigns asking about it

    @property
    def status(self) -> str:
        if self.removed_in:
            return f"removed in {self.removed_in}"
        if self.deprecated:
            return "deprecated" + (f", replaced by {self.replaced_by}" if self.replaced_by else "")
        return f"new in {self.added_in}" if self.added_in else "in use"


def search_labels(db: Database, project_id: int, text: str, limit: int = 50) -> list[tuple[int, str, str]]:
    """Labels whose preferred name, id or alternative names contain ``text`` (case-insensitive).

    Returns:
        (row id, stable id, preferred name): exact names first (preferred, then alternative), then names
        starting with the text, then shorter names; removed labels last.
    """
    needle = text.strip().lower()
    if not needle:
        return []
    pref, alts = func.lower(Label.pref_label), func.lower(func.cast(Label.alt_labels, String))
    # The text is matched literally: % and _ are not wildcards; quotes are escaped as in the JSON of alt names.
    literal = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    quoted = literal.replace('"', '\\\\"')  # inside the JSON text a quote is written \"
    with db.session() as s:
        rows = s.execute(
            select(Label.id, Label.external_id, Label.pref_label)
            .where(Label.project_id == project_id,
                   pref.like(f"%{literal}%", escape="\\") | (func.lower(Label.external_id) == needle)
                   | alts.like(f"%{literal}%", escape="\\"))
            .order_by(Label.removed_in_version_id.is_not(None), (pref == needle).desc(),
                      (func.lower(Label.external_id) == needle).desc(), alts.like(f'%"{quoted}"%', escape="\\").desc(),
                      pref.like(f"{literal}%", escape="\\").desc(), func.length(Label.pref_label), Label.pref_label)
            .limit(limit)).all()
    return [tuple(r) for r in rows]


def children_of(db: Database, project_id: int, label_id: int | None, limit: int = 200) -> tuple[list[tuple[int, str, int]], int]:
    """The current children of a label (or the top-level labels), by name, with their own child counts.

    Returns:
        ((row id, name, children) for at most ``limit``, and how many there are in all).
    """
    child = aliased(LabelParent)
    with db.session() as s:
        q = select(Label.id, Label.pref_label).where(Label.project_id == project_id, Label.removed_in_version_id.is_(None))
        if label_id is None:
            q = q.where(~select(LabelParent.child_id).where(LabelParent.child_id == Label.id).exists())
        else:
            q = q.join(LabelParent, LabelParent.child_id == Label.id).where(LabelParent.parent_id == label_id)
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = s.execute(q.order_by(func.lower(Label.pref_label)).limit(limit)).all()
        counts = dict(s.execute(select(child.parent_id, func.count()).where(child.parent_id.in_([r[0] for r in rows]))
                                .group_by(child.parent_id)).all())
    return [(i, name, counts.get(i, 0)) for i, name in rows], total


def label_recall(db: Database, label_id: int, version_id: int, k: int = 10) -> tuple[int, int]:
    """How a model version does on a label: (its gold documents the version predicted, those with it in the top-k)."""
    with db.session() as s:
        gold = select(DocumentLabel.document_id).where(DocumentLabel.label_id == label_id,
                                                       DocumentLabel.kind == ASSIGNMENT_GOLD)
        predicted = s.scalar(select(func.count(func.distinct(PredictionRecord.document_id)))
                             .where(PredictionRecord.model_version_id == version_id,
                                    PredictionRecord.document_id.in_(gold))) or 0
        hits = s.scalar(select(func.count(func.distinct(PredictionRecord.document_id)))
                        .where(PredictionRecord.model_version_id == version_id, PredictionRecord.label_id == label_id,
                               PredictionRecord.rank <= k, PredictionRecord.document_id.in_(gold))) or 0
    return predicted, hits


def label_path_ids(parents: dict[int, list[int]], label_id: int, limit: int = 20) -> list[list[int]]:
    """Every root-to-label path through the poly-hierarchy (at most ``limit``), as row ids."""
    paths: list[list[int]] = []
    stack: list[list[int]] = [[label_id]]
    while stack and len(paths) < limit:
        path = stack.pop()
        ups = [p for p in parents.get(path[0], []) if p not in path]
        if not ups:
            paths.append(path)
        stack.extend([p, *path] for p in ups)
    return paths


def label_paths(parents: dict[int, list[int]], names: dict[int, str], label_id: int, limit: int = 20) -> list[list[str]]:
    """Every root-to-label path through the poly-hierarchy (at most ``limit``), as names."""
    return sorted([names.get(i, str(i)) for i in path] for path in label_path_ids(parents, label_id, limit))


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


def find_label(db: Database, project_id: int, ref: str, by_name: bool = False) -> int | None:
    """A project's label by external id (also by preferred name with ``by_name``), else by row id; None if none."""
    from sqlalchemy import or_

    with db.session() as s:
        match = or_(Label.external_id == ref, Label.pref_label == ref) if by_name else Label.external_id == ref
        found = s.scalar(select(Label.id).where(Label.project_id == project_id, match).limit(1))
        if found is None and ref.isdigit():
            found = s.scalar(select(Label.id).where(Label.project_id == project_id, Label.id == int(ref)))
    return found


def label_places(db: Database, project_id: int, label_ids: list[int], max_paths: int = 3) -> dict[int, tuple[str, list[str]]]:
    """Name and root-to-label paths (as "A > B > C") of several labels at once."""
    with db.session() as s:
        parents, names = _ancestry(s, label_ids)
    return {i: (names.get(i, str(i)), [" > ".join(p) for p in label_paths(parents, names, i, max_paths)])
            for i in label_ids}


def label_detail(db: Database, project_id: int, label_id: int) -> LabelDetail | None:
    """A label with all its paths from the roots, its children, its documents and its status."""
    with db.session() as s:
        label = s.get(Label, label_id)
        if label is None or label.project_id != project_id:
            return None
        parents, names = _ancestry(s, [label_id])
        children = s.execute(select(Label.id, Label.pref_label).join(LabelParent, LabelParent.child_id == Label.id)
                             .where(LabelParent.parent_id == label_id, Label.removed_in_version_id.is_(None))
                             .order_by(func.lower(Label.pref_label))).all()
        docs = s.scalar(select(func.count(func.distinct(DocumentLabel.document_id)))
                        .where(DocumentLabel.label_id == label_id))
        versions = dict(s.execute(select(TaxonomyVersion.id, TaxonomyVersion.name)
                                  .where(TaxonomyVersion.project_id == project_id).order_by(TaxonomyVersion.id)).all())
        first = next(iter(versions), None)
        added = ("by hand" if (label.extra or {}).get("added") == "by hand"
                 else versions.get(label.added_in_version_id) if label.added_in_version_id not in (None, first) else None)
        campaigns = list(s.scalars(select(Campaign.name).join(CampaignLabel, CampaignLabel.campaign_id == Campaign.id)
                                   .where(CampaignLabel.label_id == label_id, Campaign.status != CAMPAIGN_STOPPED)))
        id_paths = sorted(label_path_ids(parents, label_id), key=lambda p: [names.get(i, "") for i in p])
        return LabelDetail(label.id, label.external_id, label.pref_label, list(label.alt_labels or []),
                           label.description, label.deprecated, label.replaced_by,
                           [[names.get(i, str(i)) for i in p] for p in id_paths], [n for _, n in children], docs or 0,
                           dict(label.extra or {}), id_paths, [i for i, _ in children],
                           versions.get(label.removed_in_version_id), added, campaigns)
