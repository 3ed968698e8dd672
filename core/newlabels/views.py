"""Read models for the Annotate page: documents with their labels, campaigns and their curves."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from storage.db import Database
from storage.models import CAMPAIGN_STOPPED, Campaign, CampaignLabel, Document, DocumentLabel, Label, ModelVersion, PoolEntry


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


@dataclass(frozen=True)
class CampaignView:
    id: int
    name: str
    status: str
    strategy: str
    iteration: int
    labels: int
    model_version: int | None
    config: dict

    @property
    def title(self) -> str:
        return f"{self.name} ({self.status}, iteration {self.iteration})"


def pooled_labels(db: Database, project_id: int) -> set[int]:
    """The labels that have a document pool (what a campaign can ask about): one row per pool, its first."""
    with db.session() as s:
        return set(s.scalars(select(PoolEntry.label_id).where(PoolEntry.project_id == project_id, PoolEntry.rank == 0)))


def list_campaigns(db: Database, project_id: int) -> list[CampaignView]:
    """The project's campaigns, running ones first, newest first."""
    with db.session() as s:
        counts = dict(s.execute(select(CampaignLabel.campaign_id, func.count()).group_by(CampaignLabel.campaign_id)).all())
        rows = s.execute(select(Campaign, ModelVersion.number)
                         .outerjoin(ModelVersion, ModelVersion.id == Campaign.model_version_id)
                         .where(Campaign.project_id == project_id).order_by(Campaign.id.desc())).all()
        views = [CampaignView(c.id, c.name, c.status, c.strategy, c.iteration, counts.get(c.id, 0), number,
                              dict(c.config)) for c, number in rows]
    return sorted(views, key=lambda v: v.status == CAMPAIGN_STOPPED)


def campaign_curve(db: Database, campaign_id: int) -> list[dict]:
    """The campaign's metrics per iteration (each measured before that iteration's training)."""
    with db.session() as s:
        project_id = s.scalar(select(Campaign.project_id).where(Campaign.id == campaign_id))
        versions = s.scalars(select(ModelVersion).where(ModelVersion.project_id == project_id,
                                                        ModelVersion.kind == "bicross").order_by(ModelVersion.id)).all()
        return [{"iteration": v.config.get("iteration"), "version": f"v{v.number}", **v.metrics,
                 "learned": v.config.get("learned"), "seconds": iteration_seconds(v.config),
                 "re-ranker": reranker_said(v.config)}
                for v in versions if (v.config or {}).get("campaign_id") == campaign_id]


def iteration_seconds(cfg: dict) -> float | None:
    """What an iteration's learning took (its parts' seconds), None before the first one learned."""
    parts = [float(v) for k, v in cfg.items() if k.startswith("seconds.")]
    return round(sum(parts), 1) if parts else None


def reranker_said(cfg: dict) -> str | None:
    """Whether an iteration trained the re-ranker, and why not where its check on the fresh answers (ROC AUC of its
    scores against the first stage's) said so; None where it did not train for another reason (no re-ranker, the
    model's rule off, no "yes" yet)."""
    if "cross.steps" in cfg or "cross.examples" in cfg:
        return "trained" + (f" (AUC {cfg['cross_check.cross_auc']:.2f} vs first stage {cfg['cross_check.first_auc']:.2f})"
                            if "cross_check.cross_auc" in cfg else "")
    if cfg.get("cross_check.earns") is False:
        return (f"not trained: it did not beat the first stage on the fresh answers (AUC "
                f"{cfg['cross_check.cross_auc']:.2f} vs {cfg['cross_check.first_auc']:.2f})")
    return None
