"""Writing parsed taxonomies and corpora into a project, all or nothing."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Literal

from sqlalchemy import func, insert, select

from core.accounts.auth import admin_project
from core.accounts.events import log_event
from core.data.concepts import Taxonomy
from core.data.corpus import DocumentRecord
from core.data.reports import ImportReport
from core.errors import ImportFailed
from storage.db import Database
from storage.models import (
    ASSIGNMENT_GOLD,
    Document,
    DocumentLabel,
    Label,
    LabelParent,
    TaxonomyVersion,
)

OnError = Literal["abort", "skip"]
CHUNK = 500


def import_taxonomy(
    db: Database,
    project_id: int,
    taxonomy: Taxonomy,
    version_name: str,
    user_id: int | None = None,
) -> ImportReport:
    """Store a validated taxonomy as the project's first version and make it active.

    Later versions go through the taxonomy update flow (diff, then apply).

    Raises:
        ImportFailed: the project already has labels, or the version name is taken.
    """
    report = taxonomy.report
    with db.session() as s:
        project = admin_project(s, user_id, project_id, ImportFailed)
        if s.scalar(select(func.count()).select_from(Label).where(Label.project_id == project_id)):
            raise ImportFailed(
                f"Project {project.name!r} already has a taxonomy; import a new version as an update "
                "(Taxonomy page), which shows the differences first."
            )
        version = TaxonomyVersion(project_id=project_id, name=version_name, source=report.source,
                                  stats={"concepts": len(taxonomy), "multi_parent": taxonomy.multi_parent_count()})
        s.add(version)
        s.flush()
        ids: dict[str, int] = {}
        concepts = list(taxonomy.concepts.values())
        for start in range(0, len(concepts), CHUNK):
            rows = [Label(project_id=project_id, external_id=c.id, pref_label=c.pref_label, alt_labels=c.alt_labels,
                          description=c.description, deprecated=c.deprecated, replaced_by=c.replaced_by,
                          extra=c.extra, added_in_version_id=version.id)
                    for c in concepts[start:start + CHUNK]]
            s.add_all(rows)
            s.flush()
            ids.update((r.external_id, r.id) for r in rows)
        edges = [{"child_id": ids[c.id], "parent_id": ids[p]} for c in concepts for p in c.parents]
        for start in range(0, len(edges), 5000):
            s.execute(insert(LabelParent), edges[start:start + 5000])
        project.active_taxonomy_version_id = version.id
        report.stats["parent_links"] = len(edges)
        log_event(s, "taxonomy_imported", project_id, user_id, version=version_name, **report.stats,
                  concepts=len(concepts))
    return report


def label_lookup(db: Database, project_id: int) -> dict[str, int]:
    """Map every label id, preferred name and alternative name to the label's row id.

    Ids win over names; a name shared by two labels maps to neither (ambiguous).
    """
    with db.session() as s:
        rows = s.execute(
            select(Label.id, Label.external_id, Label.pref_label, Label.alt_labels).where(Label.project_id == project_id)
        ).all()
    by_id = {ext: lid for lid, ext, _, _ in rows}
    names: dict[str, int | None] = {}
    for lid, _, pref, alts in rows:
        for name in [pref, *(alts or [])]:
            names[name] = None if name in names and names[name] != lid else lid
    return {**{k: v for k, v in names.items() if v is not None}, **by_id}


HOLDOUT_NOTE = "The file has no test split"  # how the report's hold-out sentence starts (shown with the summary)


def import_corpus(
    db: Database,
    project_id: int,
    records: Iterable[DocumentRecord],
    report: ImportReport,
    on_error: OnError = "abort",
    kind: str = ASSIGNMENT_GOLD,
    user_id: int | None = None,
    holdout: float = 0.0,
    seed: int = 0,
) -> ImportReport:
    """Store documents and their label assignments in one transaction.

    Rows the reader skipped, duplicate ids and unknown labels are reported. With
    ``on_error="abort"`` (the default) any such problem rolls everything back and raises;
    with ``"skip"`` the bad rows (or unknown labels of a row) are left out and the rest imported.

    When the project has no test document after the import and ``holdout`` > 0, that share of the imported
    documents (chosen with ``seed``) becomes the test split and the others the train split; the report says so.

    Raises:
        ImportFailed: with the report attached; nothing was written.
    """
    lookup = label_lookup(db, project_id)
    if not lookup:
        raise ImportFailed("The project has no taxonomy yet: import the taxonomy first, then the corpus.")
    unknown: dict[str, int] = {}
    assignments = 0

    def fail_if_strict() -> None:
        if on_error == "abort" and (report.skipped_count or unknown):
            parts = []
            if report.skipped_count:
                where, reason = report.skipped[0]
                parts.append(f"{report.skipped_count} bad row(s), first at {where}: {reason}")
            if unknown:
                names = ", ".join(repr(u) for u in list(unknown)[:5])
                parts.append(f"{len(unknown)} unknown label(s) not in the taxonomy, e.g. {names}")
            raise ImportFailed(
                f"{report.source}: " + "; ".join(parts) + ". Nothing was imported; fix the file or import with "
                "'skip bad rows'.",
                report,
            )

    source = f"import:{report.source}"
    with db.session() as s:
        admin_project(s, user_id, project_id, ImportFailed)
        seen = set(s.scalars(select(Document.external_id).where(Document.project_id == project_id)))
        batch: list[tuple[Document, list[int]]] = []

        imported: list[Document] = []

        def flush() -> None:
            nonlocal assignments
            s.add_all(d for d, _ in batch)
            s.flush()
            imported.extend(d for d, _ in batch)
            rows = [{"document_id": d.id, "label_id": lid, "kind": kind, "source": source}
                    for d, lids in batch for lid in lids]
            if rows:
                s.execute(insert(DocumentLabel), rows)
            assignments += len(rows)
            batch.clear()

        for rec in records:
            if rec.external_id in seen:
                report.skip(f"id {rec.external_id}", "duplicate document id")
                fail_if_strict()
                continue
            seen.add(rec.external_id)
            label_ids: list[int] = []
            for name in rec.labels:
                lid = lookup.get(name)
                if lid is None:
                    unknown[name] = unknown.get(name, 0) + 1
                elif lid not in label_ids:
                    label_ids.append(lid)
            fail_if_strict()
            batch.append((Document(project_id=project_id, external_id=rec.external_id, title=rec.title,
                                   abstract=rec.abstract, keywords=rec.keywords, extra=rec.extra, split=rec.split),
                          label_ids))
            report.imported += 1
            if len(batch) >= CHUNK:
                flush()
        fail_if_strict()
        if batch:
            flush()
        if unknown:
            report.warnings.append(
                f"{len(unknown)} unknown label(s) left out: " + ", ".join(repr(u) for u in list(unknown)[:20])
            )
        report.stats.update(assignments=assignments, unknown_labels=len(unknown))
        has_test = s.scalar(select(Document.id).where(Document.project_id == project_id, Document.split == "test").limit(1))
        if holdout > 0 and imported and has_test is None:
            held = set(random.Random(seed).sample(range(len(imported)), max(1, round(holdout * len(imported)))))
            for i, doc in enumerate(imported):
                doc.split = "test" if i in held else (doc.split or "train")
            report.stats["held_out_test"] = len(held)
            report.warnings.append(f"{HOLDOUT_NOTE}: {len(held):,} of its {len(imported):,} documents "
                                   f"({holdout:.0%}, chosen with seed {seed}) are held out as the test split, so that "
                                   "models can be evaluated; the others are the train split.")
        log_event(s, "corpus_imported", project_id, user_id, source=report.source, documents=report.imported,
                  assignments=assignments, skipped=report.skipped_count)
    return report
