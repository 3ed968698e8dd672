"""Active-learning campaigns in the database: the question queue SMEs claim and answer, and when to train."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from core.accounts.auth import admin_project, check_admin
from core.accounts.events import log_event
from core.errors import NotFound, XmtcError
from core.jobs import enqueue, enqueue_in
from storage.db import Database
from storage.models import (
    CAMPAIGN_ACTIVE,
    CAMPAIGN_PAUSED,
    CAMPAIGN_STOPPED,
    JOB_QUEUED,
    JOB_RUNNING,
    QUEUE_ANSWERED,
    QUEUE_CLAIMED,
    QUEUE_OPEN,
    QUEUE_RETIRED,
    Annotation,
    Campaign,
    CampaignLabel,
    Document,
    Job,
    Label,
    PoolEntry,
    QueueItem,
    UndoneAnswer,
    utcnow,
)

AL_ITERATION = "al_iteration"
AL_CONSOLIDATE = "al_consolidate"
ANSWERS = ("yes", "no", "unsure")
SKIP = "skip"


class AnswerConflict(XmtcError):
    """The question was answered already (e.g. from another browser tab): the stored answer stands."""


@dataclass
class CampaignConfig:
    """A campaign's settings (the ``al`` dict overrides :class:`core.newlabels.active_learning.ALConfig` fields)."""

    questions_per_fill: int = 150
    train_after_positives: int = 20
    lease_s: int = 600
    overlap: int = 1
    activate_versions: bool = True
    al: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CampaignConfig:
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Question:
    """A claimed queue item with everything the SME needs to answer it."""

    item_id: int
    campaign_id: int
    document_id: int
    label_id: int
    title: str
    abstract: str
    keywords: list[str]
    label: str
    alt_labels: list[str]
    description: str
    claimed_at: dt.datetime
    lease_until: dt.datetime
    model_version_id: int | None


def create_campaign(db: Database, project_id: int, name: str, label_ids: Sequence[int], user_id: int | None,
                    cfg: CampaignConfig | None = None, strategy: str = "greedy") -> int:
    """Start a campaign for new labels that have pools; its first job serves them and fills the queue.

    Raises:
        XmtcError: no name, no label, a label without a pool, a label in another running campaign, no model.
    """
    cfg = cfg or CampaignConfig()
    name = name.strip()
    if not name:
        raise XmtcError("Give the campaign a name.")
    if not label_ids:
        raise XmtcError("Choose at least one new label for the campaign.")
    if cfg.overlap < 1 or cfg.questions_per_fill < 1 or cfg.train_after_positives < 1 or cfg.lease_s < 1:
        raise XmtcError("Overlap, questions per fill, the training threshold and the lease (seconds) must each be at least 1.")
    with db.session() as s:
        project = admin_project(s, user_id, project_id)
        if project.active_model_version_id is None:
            raise XmtcError("The project has no active model: train one (Model page) before a campaign.")
        names = dict(s.execute(select(Label.id, Label.pref_label).where(Label.project_id == project_id,
                                                                         Label.id.in_(list(label_ids)))).all())
        missing = sorted(set(label_ids) - set(names))
        if missing:
            raise NotFound(f"Label(s) {missing[:5]} are not in this project's taxonomy.")
        pooled = set(s.scalars(select(PoolEntry.label_id).where(PoolEntry.label_id.in_(list(label_ids))).distinct()))
        no_pool = [names[i] for i in label_ids if i not in pooled]
        if no_pool:
            raise XmtcError(f"No document pool for {', '.join(no_pool[:5])}: build the pools (Model page) first.")
        busy = s.execute(select(Label.pref_label, Campaign.name).join(CampaignLabel, CampaignLabel.label_id == Label.id)
                         .join(Campaign, Campaign.id == CampaignLabel.campaign_id)
                         .where(Label.id.in_(list(label_ids)), Campaign.status != CAMPAIGN_STOPPED)).first()
        if busy:
            raise XmtcError(f"{busy[0]} is already in the running campaign {busy[1]!r}: stop that one first.")
        if s.scalar(select(Campaign.id).where(Campaign.project_id == project_id, Campaign.name == name)):
            raise XmtcError(f"A campaign named {name!r} exists already.")
        campaign = Campaign(project_id=project_id, name=name, strategy=strategy, config=cfg.as_dict(),
                            model_version_id=project.active_model_version_id, created_by=user_id)
        s.add(campaign)
        s.flush()
        s.add_all([CampaignLabel(campaign_id=campaign.id, label_id=i) for i in dict.fromkeys(label_ids)])
        log_event(s, "campaign_created", project_id, user_id, campaign=name, labels=len(label_ids))
        campaign_id = campaign.id
    enqueue(db, AL_ITERATION, project_id, {"campaign_id": campaign_id}, user_id=user_id)
    return campaign_id


def set_status(db: Database, campaign_id: int, status: str, user_id: int | None) -> None:
    """Pause, resume or stop ("satisfied") a campaign; a stopped campaign stays stopped. Stopping queues the
    consolidation (the bi-encoder learns the answers, :func:`consolidates`) where the campaign has a "yes"."""
    if status not in (CAMPAIGN_ACTIVE, CAMPAIGN_PAUSED, CAMPAIGN_STOPPED):
        raise XmtcError(f"Unknown campaign status {status!r}.")
    with db.session() as s:
        check_admin(s, user_id)
        campaign = _campaign(s, campaign_id)
        if campaign.status == CAMPAIGN_STOPPED:
            raise XmtcError(f"The campaign {campaign.name!r} is stopped; start a new one to go on.")
        campaign.status = status
        if status == CAMPAIGN_STOPPED:
            campaign.stopped_at = utcnow()
            # Questions nobody answered go back: nothing is lost, they are simply not asked any more.
            s.execute(update(QueueItem).where(QueueItem.campaign_id == campaign_id,
                                              QueueItem.status.in_((QUEUE_OPEN, QUEUE_CLAIMED)))
                      .values(status=QUEUE_RETIRED, claimed_by=None, lease_until=None))
            if consolidates(campaign) and s.scalar(select(Annotation.id).where(
                    Annotation.campaign_id == campaign_id, Annotation.answer == "yes").limit(1)):
                enqueue_in(s, AL_CONSOLIDATE, campaign.project_id, {"campaign_id": campaign_id})
        log_event(s, f"campaign_{status}", campaign.project_id, user_id, campaign=campaign.name)


def consolidates(campaign: Campaign) -> bool:
    """Whether the campaign's end teaches the bi-encoder its answers (``ALConfig.consolidate_replay`` > 0)."""
    from core.newlabels.active_learning import ALConfig

    replay = CampaignConfig.from_dict(campaign.config).al.get("consolidate_replay", ALConfig.consolidate_replay)
    return float(replay) > 0


def _campaign(s: Any, campaign_id: int) -> Campaign:
    campaign = s.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"Campaign {campaign_id} does not exist.")
    return campaign


# --- the queue -------------------------------------------------------------------------------


def add_questions(db: Database, campaign_id: int, questions: Sequence[tuple[int, int]], model_version_id: int | None,
                  iteration: int) -> int:
    """Replace the unclaimed open questions with ``questions`` (best first), ``overlap`` copies each.

    Claimed questions stay with their SME; a question already in the queue is not added twice.
    """
    with db.session() as s:
        campaign = _campaign(s, campaign_id)
        overlap = CampaignConfig.from_dict(campaign.config).overlap
        s.execute(update(QueueItem).where(QueueItem.campaign_id == campaign_id, QueueItem.status == QUEUE_OPEN)
                  .values(status=QUEUE_RETIRED))
        present = set(s.execute(select(QueueItem.document_id, QueueItem.label_id)
                                .where(QueueItem.campaign_id == campaign_id, QueueItem.status != QUEUE_RETIRED)).all())
        start = (s.scalar(select(func.max(QueueItem.position)).where(QueueItem.campaign_id == campaign_id)) or 0) + 1
        # Retired rows of a question come back to life instead of clashing with the unique constraint.
        retired = {(d, lab, c): i for i, d, lab, c in s.execute(
            select(QueueItem.id, QueueItem.document_id, QueueItem.label_id, QueueItem.copy)
            .where(QueueItem.campaign_id == campaign_id, QueueItem.status == QUEUE_RETIRED))}
        added = 0
        for n, (doc, label) in enumerate(q for q in questions if q not in present):
            for copy in range(overlap):
                values = {"position": start + n * overlap + copy, "status": QUEUE_OPEN, "claimed_by": None,
                          "claimed_at": None, "lease_until": None, "model_version_id": model_version_id,
                          "iteration": iteration}
                if (doc, label, copy) in retired:
                    s.execute(update(QueueItem).where(QueueItem.id == retired[(doc, label, copy)]).values(**values))
                else:
                    s.add(QueueItem(campaign_id=campaign_id, document_id=doc, label_id=label, copy=copy, **values))
                added += 1
        return added


def asked_questions(db: Database, campaign_id: int) -> set[tuple[int, int]]:
    """(document, label) questions answered (not skipped) or now in an SME's hands: never selected again."""
    with db.session() as s:
        answered = s.execute(select(Annotation.document_id, Annotation.label_id)
                             .where(Annotation.campaign_id == campaign_id, Annotation.answer != SKIP)).all()
        claimed = s.execute(select(QueueItem.document_id, QueueItem.label_id)
                            .where(QueueItem.campaign_id == campaign_id, QueueItem.status == QUEUE_CLAIMED)).all()
    return {tuple(r) for r in answered} | {tuple(r) for r in claimed}


def _held_by(user_id: int, now: dt.datetime) -> Any:
    """A question this SME holds: claimed by them, lease still running."""
    return and_(QueueItem.status == QUEUE_CLAIMED, QueueItem.claimed_by == user_id, QueueItem.lease_until > now)


def _askable(campaign_id: int, user_id: int, now: dt.datetime) -> tuple[Any, Any, Any]:
    """The query of the questions this SME may be asked next (best first), and the conditions of a claim whose
    lease expired and of a claimable question."""
    # Any copy of a question this SME answered or skipped is not theirs to get again.
    theirs_before = (select(Annotation.id)
                     .where(Annotation.campaign_id == campaign_id, Annotation.user_id == user_id,
                            Annotation.document_id == QueueItem.document_id,
                            Annotation.label_id == QueueItem.label_id).exists())
    expired = and_(QueueItem.status == QUEUE_CLAIMED, QueueItem.lease_until <= now)
    claimable = or_(QueueItem.status == QUEUE_OPEN, expired)
    askable = (select(QueueItem.id, QueueItem.position)
               .join(Document, Document.id == QueueItem.document_id)
               .join(Label, Label.id == QueueItem.label_id)
               .where(QueueItem.campaign_id == campaign_id, ~theirs_before, Document.removed.is_(False),
                      Label.deprecated.is_(False), Label.removed_in_version_id.is_(None))
               .order_by(QueueItem.position).limit(1))
    return askable, expired, claimable


def question_waiting(db: Database, campaign_id: int, user_id: int, now: dt.datetime | None = None) -> bool:
    """Whether :func:`claim_next` would give this SME a question now (nothing is claimed): what a waiting page polls."""
    now = now or utcnow()
    with db.session() as s:
        if _campaign(s, campaign_id).status != CAMPAIGN_ACTIVE:
            return False
        askable, _, claimable = _askable(campaign_id, user_id, now)
        return s.execute(askable.where(or_(claimable, _held_by(user_id, now)))).first() is not None


def claim_next(db: Database, campaign_id: int, user_id: int, now: dt.datetime | None = None) -> Question | None:
    """The SME's current question, or the next open one claimed for them (a compare-and-set with a lease).

    An SME never gets a question they answered or skipped, nor two copies of one question; a claim
    whose lease expired is open to anyone. Returns None when nothing is left (or the campaign is not active).
    """
    now = now or utcnow()
    for _ in range(20):
        with db.session() as s:
            campaign = _campaign(s, campaign_id)
            if campaign.status != CAMPAIGN_ACTIVE:
                return None
            lease = dt.timedelta(seconds=CampaignConfig.from_dict(campaign.config).lease_s)
            mine = s.scalar(select(QueueItem).where(QueueItem.campaign_id == campaign_id, _held_by(user_id, now))
                            .order_by(QueueItem.position).limit(1))
            if mine is not None:
                return _question(s, mine)
            askable, expired, claimable = _askable(campaign_id, user_id, now)
            # Two index-ordered lookups (open; lease expired) instead of one OR that makes the database sort
            # the whole queue: the claim stays fast however long the queue grows.
            # PostgreSQL: lock the candidate queue row, skipping rows another SME's claim holds (SQLite ignores it).
            locked = askable.with_for_update(skip_locked=True, of=QueueItem)
            found = [r for r in (s.execute(locked.where(QueueItem.status == QUEUE_OPEN)).first(),
                                 s.execute(locked.where(expired)).first()) if r is not None]
            if not found:
                return None
            candidate = min(found, key=lambda r: r.position).id
            # Compare-and-set: only one SME turns this row from claimable into theirs.
            res = s.execute(update(QueueItem).where(QueueItem.id == candidate, claimable).values(
                status=QUEUE_CLAIMED, claimed_by=user_id, claimed_at=now, lease_until=now + lease))
            if res.rowcount == 1:
                return _question(s, s.get(QueueItem, candidate))
    return None


def _question(s: Any, item: QueueItem) -> Question:
    doc = s.get(Document, item.document_id)
    label = s.get(Label, item.label_id)
    return Question(item.id, item.campaign_id, doc.id, label.id, doc.title or "", doc.abstract or "",
                    list(doc.keywords or []), label.pref_label, list(label.alt_labels or []), label.description or "",
                    item.claimed_at, item.lease_until, item.model_version_id)


def answer(db: Database, item_id: int, user_id: int, value: str, shown_at: dt.datetime | None = None,
           now: dt.datetime | None = None) -> bool:
    """Store an SME's answer (yes / no / unsure) or skip, exactly once.

    Returns:
        True when this answer completed a batch of new positives and a training job was queued.

    Raises:
        AnswerConflict: the question was answered already, or it is now another SME's.
        NotFound: the question no longer exists.
    """
    if value not in (*ANSWERS, SKIP):
        raise XmtcError(f"Unknown answer {value!r}; answer yes, no, unsure or skip.")
    now = now or utcnow()
    with db.session() as s:
        item = s.get(QueueItem, item_id)
        if item is None:
            raise NotFound("This question no longer exists (its campaign was deleted).")
        if s.scalar(select(Annotation.id).where(Annotation.queue_item_id == item_id, Annotation.user_id == user_id)):
            raise AnswerConflict("You answered this question already (perhaps in another tab); that answer stands.")
        if item.status == QUEUE_ANSWERED or (item.status == QUEUE_CLAIMED and item.claimed_by != user_id):
            raise AnswerConflict("This question was taken over by another SME after your lease ran out; "
                                 "your answer was not stored. Here is your next question.")
        if item.status == QUEUE_RETIRED:
            raise AnswerConflict("This question was withdrawn (the campaign stopped, or its document or label "
                                 "went away); your answer was not stored.")
        # Guarded update: a concurrent answer to the same row makes this one fail, never both succeed.
        done = s.execute(update(QueueItem).where(QueueItem.id == item_id, QueueItem.status == item.status,
                                                 or_(QueueItem.claimed_by == user_id, QueueItem.claimed_by.is_(None)))
                         .values(status=QUEUE_OPEN if value == SKIP else QUEUE_ANSWERED,
                                 claimed_by=None if value == SKIP else user_id, lease_until=None))
        if done.rowcount != 1:
            raise AnswerConflict("Another SME answered this question a moment ago; your answer was not stored.")
        campaign = s.get(Campaign, item.campaign_id)
        claimed = item.claimed_at if item.claimed_by == user_id else None
        start = shown_at or claimed
        s.add(Annotation(queue_item_id=item_id, campaign_id=item.campaign_id, project_id=campaign.project_id,
                         user_id=user_id, document_id=item.document_id, label_id=item.label_id, answer=value,
                         shown_at=shown_at, claimed_at=claimed, answered_at=now,
                         seconds=(now - start).total_seconds() if start else None,
                         model_version_id=item.model_version_id))
        try:
            s.flush()
        except IntegrityError:
            raise AnswerConflict("You answered this question already; that answer stands.") from None
    return maybe_queue_training(db, item.campaign_id)


def undo_last(db: Database, campaign_id: int, user_id: int, now: dt.datetime | None = None) -> int | None:
    """Take back the SME's last answer (not yet trained on): the question is theirs again. Returns its item id.

    The answer moves to the ``undone_answers`` trail (kept, with when it was undone); the SME's next answer to the
    question is the one that counts."""
    now = now or utcnow()
    with db.session() as s:
        campaign = _campaign(s, campaign_id)
        last = s.scalar(select(Annotation).where(Annotation.campaign_id == campaign_id, Annotation.user_id == user_id)
                        .order_by(Annotation.answered_at.desc(), Annotation.id.desc()).limit(1))
        if last is None:
            return None
        if last.trained_in_iteration is not None:
            raise XmtcError("Your last answer has already been learned by the model; it can no longer be undone.")
        item = s.get(QueueItem, last.queue_item_id)
        if item.status == QUEUE_CLAIMED and item.claimed_by not in (None, user_id):
            raise XmtcError("Another SME holds this question now; it cannot be undone.")
        lease = dt.timedelta(seconds=CampaignConfig.from_dict(campaign.config).lease_s)
        s.add(UndoneAnswer(annotation_id=last.id, queue_item_id=last.queue_item_id, campaign_id=campaign_id,
                           user_id=user_id, document_id=last.document_id, label_id=last.label_id, answer=last.answer,
                           answered_at=last.answered_at, seconds=last.seconds, undone_at=now))  # the trail
        s.execute(delete(Annotation).where(Annotation.id == last.id))
        item.status, item.claimed_by, item.claimed_at, item.lease_until = QUEUE_CLAIMED, user_id, now, now + lease
        log_event(s, "answer_undone", campaign.project_id, user_id, item=item.id, answer=last.answer)
        return item.id


def maybe_queue_training(db: Database, campaign_id: int) -> bool:
    """Queue the next AL iteration when enough new positives arrived and none is queued or running.

    Atomic: the campaign's row is written first (a row lock on PostgreSQL, the write lock on SQLite), so two callers
    at once check and queue one after the other, and the second sees the first's job.
    """
    with db.session() as s:
        if not s.execute(update(Campaign).where(Campaign.id == campaign_id)
                         .values(iteration=Campaign.iteration)).rowcount:
            raise NotFound(f"Campaign {campaign_id} does not exist.")
        campaign = _campaign(s, campaign_id)
        if campaign.status != CAMPAIGN_ACTIVE:
            return False
        fresh = s.scalar(select(func.count(Annotation.id)).where(
            Annotation.campaign_id == campaign_id, Annotation.answer == "yes",
            Annotation.trained_in_iteration.is_(None))) or 0
        if fresh < CampaignConfig.from_dict(campaign.config).train_after_positives:
            return False
        if pending_iteration(s, campaign_id):
            return False
        enqueue_in(s, AL_ITERATION, campaign.project_id, {"campaign_id": campaign_id})
    return True


def pending_iteration(s: Any, campaign_id: int) -> int | None:
    """The queued or running AL job of the campaign, if any."""
    for job_id, params in s.execute(select(Job.id, Job.params).where(Job.kind == AL_ITERATION,
                                                                     Job.status.in_((JOB_QUEUED, JOB_RUNNING)))):
        if (params or {}).get("campaign_id") == campaign_id:
            return job_id
    return None


# --- progress --------------------------------------------------------------------------------


@dataclass
class CampaignProgress:
    labels: list[dict[str, Any]]
    annotators: list[dict[str, Any]]
    totals: dict[str, int]
    open_questions: int
    training: bool
    questions_ever: int = 0  # 0 while the first fill is being prepared


def campaign_progress(db: Database, campaign_id: int) -> CampaignProgress:
    """Per label and per SME: asked, yes, no, unsure (and an SME's median seconds per answer)."""
    from storage.models import User

    with db.session() as s:
        _campaign(s, campaign_id)
        labels = dict(s.execute(select(Label.id, Label.pref_label).join(CampaignLabel, CampaignLabel.label_id == Label.id)
                                .where(CampaignLabel.campaign_id == campaign_id)).all())
        rows = s.execute(select(Annotation.label_id, Annotation.user_id, Annotation.answer, Annotation.seconds)
                         .where(Annotation.campaign_id == campaign_id, Annotation.answer != SKIP)).all()
        users = dict(s.execute(select(User.id, User.username)).all())
        open_q = s.scalar(select(func.count(QueueItem.id)).where(QueueItem.campaign_id == campaign_id,
                                                                 QueueItem.status == QUEUE_OPEN)) or 0
        training = pending_iteration(s, campaign_id) is not None
        ever = s.scalar(select(func.count(QueueItem.id)).where(QueueItem.campaign_id == campaign_id)) or 0
    per_label = {lid: dict.fromkeys(("asked", *ANSWERS), 0) for lid in labels}
    per_user: dict[int | None, dict[str, Any]] = {}
    for lid, uid, value, seconds in rows:
        counts = per_label.setdefault(lid, dict.fromkeys(("asked", *ANSWERS), 0))
        counts["asked"] += 1
        counts[value] += 1
        u = per_user.setdefault(uid, {"answers": 0, "seconds": []})
        u["answers"] += 1
        if seconds is not None:
            u["seconds"].append(seconds)
    totals = {k: sum(c[k] for c in per_label.values()) for k in ("asked", *ANSWERS)}
    return CampaignProgress(
        labels=[{"label": labels.get(lid, f"#{lid}"), **c} for lid, c in sorted(per_label.items(),
                                                                                 key=lambda kv: labels.get(kv[0], ""))],
        annotators=[{"SME": users.get(uid, "(deleted user)"), "answers": u["answers"],
                     "median seconds": round(statistics.median(u["seconds"]), 1) if u["seconds"] else None}
                    for uid, u in sorted(per_user.items(), key=lambda kv: -kv[1]["answers"])],
        totals=totals, open_questions=open_q, training=training, questions_ever=ever)
