"""Changing a project's taxonomy: a new yearly version (diff first, then apply), and single label edits.

Every change is one transaction and one event in the log; the model then serves the change without
retraining (a job embeds added or renamed labels into the active version's index and takes removed or
deprecated ones out, as a new model version).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select

from core.accounts.auth import admin_project, check_admin
from core.accounts.events import log_event
from core.data.catalog import servable_labels
from core.data.concepts import Concept, Taxonomy, read_taxonomy, validate
from core.errors import NotFound, TaxonomyError, XmtcError
from core.jobs import JobContext, enqueue, job_handler
from core.taxonomy.diff import TaxonomyDiff, diff_taxonomies
from storage.db import Database
from storage.models import (
    CAMPAIGN_STOPPED,
    QUEUE_CLAIMED,
    QUEUE_OPEN,
    Campaign,
    Label,
    LabelParent,
    Project,
    QueueItem,
    TaxonomyVersion,
)

PREVIEW_UPDATE = "preview_taxonomy_update"
APPLY_UPDATE = "apply_taxonomy_update"
SERVE_CHANGES = "serve_label_changes"


def current_concepts(db: Database, project_id: int) -> dict[str, Concept]:
    """The project's labels that are not removed, as plain concepts (parents by stable id)."""
    with db.session() as s:
        rows = s.execute(select(Label.id, Label.external_id, Label.pref_label, Label.alt_labels, Label.description,
                                Label.deprecated, Label.replaced_by, Label.extra)
                         .where(Label.project_id == project_id, Label.removed_in_version_id.is_(None))).all()
        ext = {i: e for i, e, *_ in rows}
        parents: dict[int, list[str]] = {}
        for c, p in s.execute(select(LabelParent.child_id, LabelParent.parent_id)
                              .join(Label, Label.id == LabelParent.child_id).where(Label.project_id == project_id)):
            if p in ext:
                parents.setdefault(c, []).append(ext[p])
    return {e: Concept(e, pref, list(alts or []), sorted(parents.get(i, [])), desc or "", dep, rep, dict(extra or {}))
            for i, e, pref, alts, desc, dep, rep, extra in rows}


def _busy_labels(s: Any, project_id: int, external_ids: Sequence[str]) -> list[str]:
    """Labels among ``external_ids`` with questions waiting or in an SME's hands in a running campaign."""
    if not external_ids:
        return []
    rows = s.execute(select(Label.pref_label, Campaign.name, QueueItem.id)
                     .join(QueueItem, QueueItem.label_id == Label.id).join(Campaign, Campaign.id == QueueItem.campaign_id)
                     .where(Label.project_id == project_id, Label.external_id.in_(list(external_ids)),
                            Campaign.status != CAMPAIGN_STOPPED, QueueItem.status.in_((QUEUE_OPEN, QUEUE_CLAIMED)))).all()
    counts: dict[tuple[str, str], int] = {}
    for label, campaign, _ in rows:
        counts[(label, campaign)] = counts.get((label, campaign), 0) + 1
    return [f"{label!r} has {n} open question(s) in the campaign {campaign!r}" for (label, campaign), n in sorted(counts.items())]


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def preview_update(db: Database, project_id: int, taxonomy: Taxonomy) -> tuple[TaxonomyDiff, list[str]]:
    """The diff of a new version against the current taxonomy, and what blocks applying it.

    Raises:
        TaxonomyError: the new version is itself invalid (a parent that does not exist, a cycle).
    """
    validate(taxonomy)
    diff = diff_taxonomies(current_concepts(db, project_id), taxonomy.concepts)
    with db.session() as s:
        blockers = _busy_labels(s, project_id, [r["id"] for r in diff.removed + diff.deprecated])
    return diff, blockers


def apply_update(db: Database, project_id: int, taxonomy: Taxonomy, version_name: str,
                 user_id: int | None = None) -> tuple[TaxonomyDiff, dict[str, list[int]]]:
    """Make a new version the project's taxonomy, all or nothing.

    Added labels are created (servable once the model embeds them); renamed, moved and edited ones are
    updated in place (their history of documents and predictions stays); removed ones are marked removed in
    this version and deprecated ones deprecated with their replacement: both leave predictions, nothing is deleted.

    Returns:
        The diff applied, and label row ids: those the model must embed (``add``: added and renamed) and drop
        (``remove``), and the added ones (``new``: candidates for an active-learning campaign).

    Raises:
        TaxonomyError: an invalid version, a removed or deprecated label with open campaign questions, an
            empty or taken version name. Nothing is written.
    """
    version_name = version_name.strip()
    if not version_name:
        raise TaxonomyError("Name the new taxonomy version (e.g. 'PhySH 2.7').")
    diff, blockers = preview_update(db, project_id, taxonomy)
    if blockers:
        raise TaxonomyError("The update was not applied: " + "; ".join(blockers[:5])
                            + ". Stop those campaigns (Annotate page) first, or keep the labels.")
    concepts = taxonomy.concepts
    with db.session() as s:
        project = admin_project(s, user_id, project_id)
        if s.scalar(select(TaxonomyVersion.id).where(TaxonomyVersion.project_id == project_id,
                                                     TaxonomyVersion.name == version_name)):
            raise TaxonomyError(f"A taxonomy version named {version_name!r} exists already; choose another name.")
        version = TaxonomyVersion(project_id=project_id, name=version_name, source=taxonomy.report.source,
                                  stats={"concepts": len(taxonomy), "multi_parent": taxonomy.multi_parent_count(),
                                         **{f"diff_{k}": n for k, n in diff.counts().items()}})
        s.add(version)
        s.flush()
        labels = {lab.external_id: lab for lab in s.scalars(select(Label).where(Label.project_id == project_id))}
        for row in diff.added:
            c = concepts[row["id"]]
            if row["id"] in labels:  # a label removed in an earlier version comes back
                lab = labels[row["id"]]
                lab.removed_in_version_id = None
            else:
                lab = Label(project_id=project_id, external_id=c.id, added_in_version_id=version.id)
                s.add(lab)
                labels[c.id] = lab
            lab.pref_label, lab.alt_labels, lab.description = c.pref_label, list(c.alt_labels), c.description
            lab.deprecated, lab.replaced_by, lab.extra = c.deprecated, c.replaced_by, dict(c.extra)
        s.flush()
        for row in diff.renamed + diff.edited:
            c, lab = concepts[row["id"]], labels[row["id"]]
            lab.pref_label, lab.alt_labels, lab.description = c.pref_label, list(c.alt_labels), c.description
            lab.deprecated = c.deprecated
        for row in diff.deprecated:
            lab = labels[row["id"]]
            lab.deprecated, lab.replaced_by = True, row["replaced_by"]
        for row in diff.removed:
            labels[row["id"]].removed_in_version_id = version.id
        rewire = [r["id"] for r in diff.added + diff.moved]
        if rewire:
            s.execute(delete(LabelParent).where(LabelParent.child_id.in_([labels[i].id for i in rewire])))
            edges = [{"child_id": labels[i].id, "parent_id": labels[p].id} for i in rewire for p in concepts[i].parents]
            if edges:
                s.execute(insert(LabelParent), edges)
        project.active_taxonomy_version_id = version.id
        log_event(s, "taxonomy_updated", project_id, user_id, version=version_name, **diff.counts())
        change = {"add": [labels[r["id"]].id for r in diff.added + diff.renamed if not concepts[r["id"]].deprecated],
                  "remove": [labels[r["id"]].id for r in diff.removed + diff.deprecated],
                  "new": [labels[r["id"]].id for r in diff.added]}
    return diff, change


# --- single label edits (admins, on the Taxonomy page) ---------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "label"


def add_label(db: Database, project_id: int, pref_label: str, alt_labels: Sequence[str] = (), description: str = "",
              parent_ids: Sequence[int] = (), user_id: int | None = None, external_id: str = "") -> int:
    """Add one label to the current taxonomy and return its row id (the model serves it after the serve job).

    Raises:
        XmtcError: no name, a name or id the taxonomy has already, a parent that is not in the project.
    """
    pref_label = pref_label.strip()
    if not pref_label:
        raise XmtcError("A new label needs a preferred name.")
    alts = [a.strip() for a in alt_labels if a.strip() and a.strip() != pref_label]
    with db.session() as s:
        project = admin_project(s, user_id, project_id)
        clash = s.scalar(select(Label.external_id).where(Label.project_id == project_id,
                                                         Label.removed_in_version_id.is_(None), Label.pref_label == pref_label))
        if clash:
            raise XmtcError(f"The taxonomy has a label named {pref_label!r} already (id {clash}).")
        external_id = external_id.strip() or f"local:{_slug(pref_label)}-{uuid.uuid4().hex[:6]}"
        if s.scalar(select(Label.id).where(Label.project_id == project_id, Label.external_id == external_id)):
            raise XmtcError(f"The id {external_id!r} is taken; choose another.")
        parents = set(s.scalars(select(Label.id).where(Label.project_id == project_id, Label.id.in_(list(parent_ids)),
                                                       Label.removed_in_version_id.is_(None))))
        missing = sorted(set(parent_ids) - parents)
        if missing:
            raise XmtcError(f"Parent label(s) {missing[:5]} are not in this project's current taxonomy.")
        label = Label(project_id=project_id, external_id=external_id, pref_label=pref_label, alt_labels=alts,
                      description=description.strip(), added_in_version_id=project.active_taxonomy_version_id,
                      extra={"added": "by hand"})
        s.add(label)
        s.flush()
        if parents:
            s.execute(insert(LabelParent), [{"child_id": label.id, "parent_id": p} for p in sorted(parents)])
        log_event(s, "label_added", project_id, user_id, label=pref_label, external_id=external_id,
                  parents=sorted(parents))
        return label.id


def retire_label(db: Database, project_id: int, label_id: int, how: str, user_id: int | None = None,
                 replaced_by: int | None = None) -> None:
    """Deprecate (kept, not predicted, with an optional replacement) or remove (kept in history) a label.

    Raises:
        XmtcError: an unknown label or replacement, a label already retired, or open campaign questions on it.
    """
    if how not in ("deprecate", "remove"):
        raise XmtcError(f"Unknown change {how!r}: deprecate or remove.")
    with db.session() as s:
        check_admin(s, user_id)
        label = s.get(Label, label_id)
        if label is None or label.project_id != project_id:
            raise NotFound(f"Label {label_id} is not in this project.")
        if label.removed_in_version_id is not None or (how == "deprecate" and label.deprecated):
            raise XmtcError(f"{label.pref_label!r} is already {'removed' if label.removed_in_version_id else 'deprecated'}.")
        busy = _busy_labels(s, project_id, [label.external_id])
        if busy:
            raise XmtcError(f"Not changed: {busy[0]}. Stop that campaign (Annotate page) first.")
        replacement = None
        if replaced_by is not None:
            target = s.get(Label, replaced_by)
            if target is None or target.project_id != project_id or target.id == label_id:
                raise XmtcError("The replacement must be another label of this project.")
            replacement = target.external_id
        if how == "deprecate":
            label.deprecated, label.replaced_by = True, replacement
        else:
            project = s.get(Project, project_id)
            label.removed_in_version_id = project.active_taxonomy_version_id
            label.replaced_by = replacement or label.replaced_by
        log_event(s, f"label_{how}d", project_id, user_id, label=label.pref_label, external_id=label.external_id,
                  replaced_by=replacement)


def queue_serving(db: Database, project_id: int, add: Sequence[int] = (), remove: Sequence[int] = (),
                  user_id: int | None = None) -> int | None:
    """Queue the job that makes the active model serve label changes (None when there is nothing to serve)."""
    if not add and not remove:
        return None
    return enqueue(db, SERVE_CHANGES, project_id, {"add": list(add), "remove": list(remove)}, user_id=user_id,
                   max_attempts=2)


# --- jobs ------------------------------------------------------------------------------------


def _read(params: dict[str, Any]) -> Taxonomy:
    path = Path(params["path"])
    if not path.is_file():
        raise XmtcError(f"The uploaded file {path.name} is gone; upload it again.")
    return read_taxonomy(path, params.get("format"), params.get("label_columns") or None)


@job_handler(PREVIEW_UPDATE, "Compare a new taxonomy version")
def preview_update_job(ctx: JobContext) -> dict[str, Any]:
    """Read and check an uploaded taxonomy version and store its diff against the current one."""
    ctx.progress(0.05, "reading the new version", force=True)
    taxonomy = _read(ctx.params)
    ctx.progress(0.6, f"comparing {len(taxonomy):,} concepts with the current taxonomy", force=True)
    diff, blockers = preview_update(ctx.db, ctx.project_id, taxonomy)
    counts = diff.counts()
    return {"diff": diff.as_dict(), "counts": counts, "blockers": blockers, "path": ctx.params["path"],
            "format": ctx.params.get("format"), "digest": file_digest(ctx.params["path"]), "concepts": len(taxonomy),
            "version_name": ctx.params.get("version_name", ""),
            "report": ", ".join(f"{n:,} {k}" for k, n in counts.items()) + (f"; blocked: {blockers[0]}" if blockers else "")}


@job_handler(APPLY_UPDATE, "Apply a new taxonomy version")
def apply_update_job(ctx: JobContext) -> dict[str, Any]:
    """Apply a previewed version (refused if the file changed since), then serve its changes at once."""
    if ctx.params.get("digest") and file_digest(ctx.params["path"]) != ctx.params["digest"]:
        raise XmtcError("The file changed since its differences were shown; compare it again before applying.")
    taxonomy = _read(ctx.params)
    ctx.progress(0.2, "applying the new version", force=True)
    user_id = ctx.params.get("user_id")
    diff, change = apply_update(ctx.db, ctx.project_id, taxonomy, ctx.params.get("version_name", ""), user_id)
    ctx.progress(0.4, f"serving {len(change['add'])} new or renamed labels, dropping {len(change['remove'])}", force=True)
    served = serve_changes(ctx, change["add"], change["remove"])
    counts = diff.counts()
    return {"counts": counts, "added_label_ids": change["new"], **served,
            "report": "applied: " + ", ".join(f"{n:,} {k}" for k, n in counts.items()) + f"; {served['served']}"}


@job_handler(SERVE_CHANGES, "Serve taxonomy changes (no retraining)")
def serve_changes_job(ctx: JobContext) -> dict[str, Any]:
    served = serve_changes(ctx, ctx.params.get("add", []), ctx.params.get("remove", []))
    return {**served, "report": served["served"]}


def serve_changes(ctx: JobContext, add: Sequence[int], remove: Sequence[int]) -> dict[str, Any]:
    """Embed ``add`` into the active version's index and drop ``remove``, as a new active version."""
    from core.model.bicross import make_label_table
    from core.model.loading import load_ranker
    from core.model.ranker import BiCrossRanker
    from core.model.versions import active_version, register_version, write_bundle

    version = active_version(ctx.db, ctx.project_id)
    if version is None:
        return {"served": "no model yet: the labels are served when the label index is built", "model_version_id": None}
    if version.kind not in ("bicross", "zero_shot"):
        raise XmtcError(f"The active {version.name} is the classifier baseline, which cannot serve new labels without "
                        "retraining; activate a BiCross or zero-shot version and serve the changes again.")
    settings = ctx.settings
    ranker = load_ranker(version.path, settings.device)
    assert isinstance(ranker, BiCrossRanker)
    rows = [r for r in servable_labels(ctx.db, ctx.project_id) if r.id in set(add)]
    if rows:
        table = make_label_table(rows, [])
        ranker.add_labels([int(i) for i in table.ids], table.texts, table.external_ids)
    present = {int(i) for i in ranker.table.ids}
    gone = [i for i in remove if i in present]
    if gone:
        ranker.remove_labels(gone)
    ctx.check_cancel()
    # The encoders do not change: the new bundle shares them with the version it was served from.
    bundle = write_bundle(settings.models_dir, ctx.project_id, version.kind,
                          lambda folder: ranker.save(folder, copy_encoders=False))
    new_id = register_version(ctx.db, ctx.project_id, version.kind, bundle,
                              config={**{k: v for k, v in version.config.items() if not k.startswith("taxonomy.")},
                                      "taxonomy.served_from": version.name, "taxonomy.added": len(rows),
                                      "taxonomy.removed": len(gone)},
                              metrics={}, taxonomy_version_id=None, owner=ctx.owner, activate=True)
    return {"served": f"v{version.number} + {len(rows)} label(s) embedded, {len(gone)} dropped -> a new active version",
            "model_version_id": new_id}
