"""ORM tables: projects, users, documents, taxonomy, assignments, models, pools, campaigns, queue, jobs, events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    """Timezone-aware current UTC time (all timestamps are stored in UTC)."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timestamps stored as naive UTC and read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware (use storage.models.utcnow())")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, dt.datetime: UTCDateTime()}


ROLE_ADMIN = "admin"
ROLE_ANNOTATOR = "annotator"
ROLES = (ROLE_ADMIN, ROLE_ANNOTATOR)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default=ROLE_ANNOTATOR)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @property
    def is_admin(self) -> bool:
        return self.role == ROLE_ADMIN


class UserSession(Base):
    """A server-side sign-in session: the browser holds the random token in a cookie, the database only its hash."""

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active_taxonomy_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("taxonomy_versions.id", use_alter=True, name="fk_project_active_taxonomy", ondelete="SET NULL")
    )
    active_model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", use_alter=True, name="fk_project_active_model", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("project_id", "user_id", name="uq_membership_project_user"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer token for the REST API, created by an admin: the client holds the random token, the database only
    its SHA-256; it reaches only the projects listed in ``api_token_projects``."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class ApiTokenProject(Base):
    __tablename__ = "api_token_projects"
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("project_id", "external_id", name="uq_document_project_external_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(Text, default="")
    abstract: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[list[str]] = mapped_column(default=list)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    split: Mapped[str | None] = mapped_column(String(20), index=True)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TaxonomyVersion(Base):
    __tablename__ = "taxonomy_versions"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_taxonomy_version_project_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(Text, default="")
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("project_id", "external_id", name="uq_label_project_external_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(500))
    pref_label: Mapped[str] = mapped_column(Text)
    alt_labels: Mapped[list[str]] = mapped_column(default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    deprecated: Mapped[bool] = mapped_column(Boolean, default=False)
    replaced_by: Mapped[str | None] = mapped_column(String(500))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    added_in_version_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_versions.id", ondelete="SET NULL"))
    removed_in_version_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_versions.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    parents: Mapped[list[Label]] = relationship(
        secondary="label_parents",
        primaryjoin="Label.id == LabelParent.child_id",
        secondaryjoin="Label.id == LabelParent.parent_id",
        viewonly=True,
    )


class LabelParent(Base):
    """One edge of the poly-hierarchy (a label may have several parents)."""

    __tablename__ = "label_parents"
    child_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True, index=True)


ASSIGNMENT_GOLD = "gold"
ASSIGNMENT_WEAK = "weak"


class DocumentLabel(Base):
    """A gold or weak assignment of a label to a document, with where it came from."""

    __tablename__ = "document_labels"
    __table_args__ = (
        UniqueConstraint("document_id", "label_id", "kind", name="uq_document_label_kind"),
        Index("ix_document_labels_label", "label_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10), default=ASSIGNMENT_GOLD)
    source: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """An immutable model bundle on disk; the project's active one serves predictions."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("project_id", "number", name="uq_model_version_project_number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))
    path: Mapped[str] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    taxonomy_version_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_versions.id", ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PoolEntry(Base):
    """A document in a new label's candidate pool (the documents worth asking about for that label)."""

    __tablename__ = "pool_entries"
    __table_args__ = (
        UniqueConstraint("label_id", "document_id", name="uq_pool_entry_label_document"),
        Index("ix_pool_entries_label_rank", "label_id", "rank"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"))
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    # The (domain-adapted) encoder that built the pool; NULL: the pretrained one.
    encoder_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


CAMPAIGN_ACTIVE = "active"
CAMPAIGN_PAUSED = "paused"
CAMPAIGN_STOPPED = "stopped"

QUEUE_OPEN = "open"
QUEUE_CLAIMED = "claimed"
QUEUE_ANSWERED = "answered"
QUEUE_RETIRED = "retired"  # re-ranked out, or its document/label went away: never shown again


class Campaign(Base):
    """An active-learning campaign: new labels, the queue of questions about them, and the model it trains."""

    __tablename__ = "campaigns"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_campaign_project_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=CAMPAIGN_ACTIVE)
    strategy: Mapped[str] = mapped_column(String(40), default="greedy")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The version the campaign's model currently is (it moves on with each training iteration).
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    iteration: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[dt.datetime | None]


class CampaignLabel(Base):
    __tablename__ = "campaign_labels"
    __table_args__ = (UniqueConstraint("campaign_id", "label_id", name="uq_campaign_label"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"))


class QueueItem(Base):
    """One question ("does this document carry this label?") waiting for, shown to, or answered by an SME."""

    __tablename__ = "queue_items"
    __table_args__ = (
        UniqueConstraint("campaign_id", "document_id", "label_id", "copy", name="uq_queue_item_question_copy"),
        Index("ix_queue_items_campaign_status_position", "campaign_id", "status", "position"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"))
    copy: Mapped[int] = mapped_column(Integer, default=0)  # > 0: an overlap copy for inter-annotator agreement
    position: Mapped[int] = mapped_column(Integer)  # lower is asked first
    status: Mapped[str] = mapped_column(String(20), default=QUEUE_OPEN)
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    claimed_at: Mapped[dt.datetime | None]
    lease_until: Mapped[dt.datetime | None]
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    iteration: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Annotation(Base):
    """An SME's answer to a queue item, with the time it took and the model version that asked."""

    __tablename__ = "annotations"
    __table_args__ = (
        UniqueConstraint("queue_item_id", "user_id", name="uq_annotation_item_user"),
        Index("ix_annotations_campaign_user", "campaign_id", "user_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    queue_item_id: Mapped[int] = mapped_column(ForeignKey("queue_items.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"))
    answer: Mapped[str] = mapped_column(String(10))  # yes / no / unsure / skip
    shown_at: Mapped[dt.datetime | None]
    claimed_at: Mapped[dt.datetime | None]
    answered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    seconds: Mapped[float | None] = mapped_column(Float)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    trained_in_iteration: Mapped[int | None] = mapped_column(Integer)


RATER_SME = "sme"
RATER_LLM = "llm"


class UndoneAnswer(Base):
    """The trail of undo: an answer an SME took back, as it was, and when. ``annotations`` keeps each SME's latest
    answer (what training, exports and agreement read); this table keeps what was first answered."""

    __tablename__ = "undone_answers"
    id: Mapped[int] = mapped_column(primary_key=True)
    annotation_id: Mapped[int] = mapped_column(Integer)  # the row it was in annotations
    queue_item_id: Mapped[int] = mapped_column(ForeignKey("queue_items.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"))
    answer: Mapped[str] = mapped_column(String(10))
    answered_at: Mapped[dt.datetime]
    seconds: Mapped[float | None] = mapped_column(Float)
    undone_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Rating(Base):
    """A 0/1/2 relevance rating of a label a model version predicted for a document, by an SME or an LLM."""

    __tablename__ = "ratings"
    __table_args__ = (
        UniqueConstraint("document_id", "label_id", "model_version_id", "rater", name="uq_rating_doc_label_version_rater"),
        Index("ix_ratings_version_doc", "model_version_id", "document_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))  # sme / llm
    rater: Mapped[str] = mapped_column(String(255))  # "user:<id>" or "llm:<model name>"
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    rating: Mapped[int] = mapped_column(Integer)  # 0 irrelevant, 1 somewhat, 2 highly relevant
    explanation: Mapped[str] = mapped_column(Text, default="")
    seconds: Mapped[float | None] = mapped_column(Float)  # an SME's time on the document, shared by its labels
    llm_shown: Mapped[bool] = mapped_column(Boolean, default=False)  # the SME saw the LLM's ratings first
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LLMJudgment(Base):
    """An LLM's verdict on one label for one document text (rated 0/1/2 or explicitly unrated), cached so
    that nothing is paid for twice. The key digests the document text, the label, the model and the prompt version."""

    __tablename__ = "llm_judgments"
    __table_args__ = (
        UniqueConstraint("cache_key", name="uq_llm_judgment_cache_key"),
        Index("ix_llm_judgments_project_document", "project_id", "document_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    cache_key: Mapped[str] = mapped_column(String(64))
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(200))
    prompt_version: Mapped[str] = mapped_column(String(40))
    rating: Mapped[int | None] = mapped_column(Integer)  # None: unrated (the LLM gave no valid score)
    explanation: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(10))  # rated / unrated
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


JOB_QUEUED = "queued"
JOB_RUNNING = "running"
JOB_DONE = "done"
JOB_FAILED = "failed"
JOB_CANCELLED = "cancelled"
JOB_FINAL_STATES = (JOB_DONE, JOB_FAILED, JOB_CANCELLED)


class Job(Base):
    """Long work run by a worker process: claimed atomically, heartbeating, cancellable."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_id", "status", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(60))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default=JOB_QUEUED)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(100))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    heartbeat_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class Worker(Base):
    """A live (or dead) worker process, known by its heartbeat."""

    __tablename__ = "workers"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    stopped: Mapped[bool] = mapped_column(Boolean, default=False)
    capabilities: Mapped[list[str] | None] = mapped_column(default=list)  # e.g. ["gpu"]: jobs that need one wait for it


class Event(Base):
    """Append-only audit log: who did what, when."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PredictionRecord(Base):
    """A label a model version ranked for a document (kept per version, so history survives)."""

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("document_id", "model_version_id", "label_id", name="uq_prediction_doc_version_label"),
        Index("ix_predictions_version_doc", "model_version_id", "document_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    bi_score: Mapped[float] = mapped_column(Float)
    cross_score: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
