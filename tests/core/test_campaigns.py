"""The campaign queue: claims with leases, answers stored once, undo, skip, overlap, training threshold."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import select, update

from core.errors import XmtcError
from core.newlabels.campaigns import (
    AnswerConflict,
    CampaignConfig,
    add_questions,
    answer,
    asked_questions,
    campaign_progress,
    claim_next,
    create_campaign,
    maybe_queue_training,
    set_status,
    undo_last,
)
from core.newlabels.jobs import store_pools
from storage.models import Annotation, Document, Job, Label, QueueItem, utcnow
from tests.fakes import job_params

BACKENDS = ("sqlite", "postgresql")  # every test using db runs on both (tests/conftest.py)

T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


def campaign(world, labels=("onc",), **cfg):
    db = world["db"]
    cid = create_campaign(db, world["pid"], "c", [world["labels"][x] for x in labels], world["admin"],
                          CampaignConfig(**cfg))
    questions = [(d, world["labels"][x]) for x in labels for d in world["docs"]]
    add_questions(db, cid, questions, world["version"], 0)
    return cid


def test_creating_a_campaign_queues_its_first_iteration(world):
    cid = campaign(world)
    with world["db"].session() as s:
        jobs = s.scalars(select(Job)).all()
    assert [(j.kind, job_params(j)) for j in jobs] == [("al_iteration", {"campaign_id": cid})]


def test_bad_campaigns_are_refused_with_a_reason(world):
    db, pid, labels = world["db"], world["pid"], world["labels"]
    with pytest.raises(XmtcError, match="No document pool for Myocardial Infarction"):
        create_campaign(db, pid, "x", [labels["mi"]], None)
    with pytest.raises(XmtcError, match="at least one new label"):
        create_campaign(db, pid, "x", [], None)
    with pytest.raises(XmtcError, match="not in this project's taxonomy"):
        create_campaign(db, pid, "x", [99999], None)
    campaign(world)
    with pytest.raises(XmtcError, match="already in the running campaign"):
        create_campaign(db, pid, "y", [labels["onc"]], None)


def test_two_smes_never_get_the_same_question_and_a_reload_shows_the_same_one(world):
    db, (a, b, _) = world["db"], world["users"]
    cid = campaign(world)
    qa, qb = claim_next(db, cid, a, T0), claim_next(db, cid, b, T0)
    assert qa.item_id != qb.item_id
    assert claim_next(db, cid, a, T0 + dt.timedelta(seconds=5)).item_id == qa.item_id


def test_an_expired_lease_returns_the_question_and_the_late_answer_is_refused(world):
    db, (a, b, _) = world["db"], world["users"]
    cid = campaign(world, lease_s=60)
    first = claim_next(db, cid, a, T0)
    later = T0 + dt.timedelta(seconds=61)
    taken = claim_next(db, cid, b, later)
    assert taken.item_id == first.item_id  # a walked away: b gets it
    with pytest.raises(AnswerConflict, match="taken over by another SME"):
        answer(db, first.item_id, a, "yes", now=later)
    answer(db, taken.item_id, b, "no", now=later)
    with world["db"].session() as s:
        assert [(x.user_id, x.answer) for x in s.scalars(select(Annotation))] == [(b, "no")]


def test_answers_are_stored_once_with_their_timing_and_a_stale_tab_cannot_answer_again(world):
    db, a = world["db"], world["users"][0]
    cid = campaign(world)
    q = claim_next(db, cid, a, T0)
    answer(db, q.item_id, a, "yes", shown_at=T0 + dt.timedelta(seconds=1), now=T0 + dt.timedelta(seconds=4))
    with pytest.raises(AnswerConflict, match="answered this question already"):
        answer(db, q.item_id, a, "no", now=T0 + dt.timedelta(seconds=9))
    with db.session() as s:
        row = s.scalars(select(Annotation)).one()
    assert (row.answer, row.seconds, row.model_version_id) == ("yes", 3.0, world["version"])
    assert (q.document_id, q.label_id) in asked_questions(db, cid)


def test_undo_gives_the_question_back_and_skip_passes_it_to_someone_else(world):
    db, (a, b, _) = world["db"], world["users"]
    cid = campaign(world)
    q = claim_next(db, cid, a, T0)
    answer(db, q.item_id, a, "no", now=T0)
    assert undo_last(db, cid, a, T0) == q.item_id
    assert claim_next(db, cid, a, T0).item_id == q.item_id  # shown again to a
    answer(db, q.item_id, a, "skip", now=T0)
    from storage.models import Annotation, UndoneAnswer

    with db.session() as s:  # the first answer stays in the trail; only the latest one counts
        assert [(u.queue_item_id, u.user_id, u.answer) for u in s.query(UndoneAnswer)] == [(q.item_id, a, "no")]
        assert [x.answer for x in s.query(Annotation).filter_by(queue_item_id=q.item_id)] == ["skip"]
    assert claim_next(db, cid, a, T0).item_id != q.item_id  # a skipped it: not a's again
    assert claim_next(db, cid, b, T0).item_id == q.item_id  # back in the queue for b
    assert undo_last(db, cid, world["users"][2]) is None


def test_overlap_copies_go_to_different_smes(world):
    db, (a, b, c) = world["db"], world["users"]
    cid = create_campaign(db, world["pid"], "c", [world["labels"]["onc"]], None, CampaignConfig(overlap=2))
    add_questions(db, cid, [(world["docs"][0], world["labels"]["onc"])], None, 0)
    qa = claim_next(db, cid, a, T0)
    answer(db, qa.item_id, a, "yes", now=T0)
    assert claim_next(db, cid, a, T0) is None  # the second copy is not for a
    qb = claim_next(db, cid, b, T0)
    assert (qb.document_id, qb.label_id) == (qa.document_id, qa.label_id) and qb.item_id != qa.item_id
    answer(db, qb.item_id, b, "no", now=T0)
    assert claim_next(db, cid, c, T0) is None


@pytest.mark.parametrize(("replay", "first", "queued"), [(1.0, "yes", True), (None, "yes", False), (1.0, "no", False)])
def test_stopping_queues_the_consolidation_where_configured_and_something_was_confirmed(world, replay, first, queued):
    db, a = world["db"], world["users"][0]
    cid = campaign(world, **({"al": {"consolidate_replay": replay}} if replay is not None else {}))
    q = claim_next(db, cid, a, T0)
    answer(db, q.item_id, a, first, now=T0)
    set_status(db, cid, "stopped", None)
    with db.session() as s:
        kinds = [(j.kind, job_params(j)) for j in s.scalars(select(Job)) if j.kind != "al_iteration"]
    assert kinds == ([("al_consolidate", {"campaign_id": cid})] if queued else [])


def test_a_training_iteration_is_queued_once_after_the_threshold(world):
    db, a = world["db"], world["users"][0]
    cid = campaign(world, labels=("onc", "card"), train_after_positives=2)
    with db.session() as s:  # the first iteration (serving the labels) is done
        s.execute(update(Job).values(status="done"))
    queued = []
    for _ in range(4):
        q = claim_next(db, cid, a, T0)
        queued.append(answer(db, q.item_id, a, "yes", now=T0))
    assert queued == [False, True, False, False]  # one job, not one per answer
    assert campaign_progress(db, cid).training


def test_concurrent_callers_queue_one_iteration(world, monkeypatch):
    import threading

    import core.newlabels.campaigns as campaigns

    db, a = world["db"], world["users"][0]
    cid = campaign(world, labels=("onc", "card"), train_after_positives=1)
    with db.session() as s:  # the first iteration (serving the labels) is done
        s.execute(update(Job).values(status="done"))
    with db.session() as s:
        q = s.scalar(select(QueueItem).where(QueueItem.campaign_id == cid).limit(1))
        s.add(Annotation(queue_item_id=q.id, campaign_id=cid, project_id=world["pid"], user_id=a,
                         document_id=q.document_id, label_id=q.label_id, answer="yes"))
    checked = campaigns.pending_iteration

    def slow_check(s, campaign_id):  # a slow moment between "none is pending" and queueing one
        found = checked(s, campaign_id)
        time.sleep(0.3)
        return found

    monkeypatch.setattr(campaigns, "pending_iteration", slow_check)
    results, errors = [], []

    def call() -> None:
        try:
            results.append(maybe_queue_training(db, cid))
        except Exception as exc:  # a lock error would be a failure too
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(results) == [False, False, False, True]
    with db.session() as s:
        assert len(s.scalars(select(Job).where(Job.kind == "al_iteration", Job.status == "queued")).all()) == 1


def test_answers_are_read_in_the_order_they_were_given(world):
    from core.newlabels.jobs import _campaign_answers

    db, a, b = world["db"], world["users"][0], world["users"][1]
    cid = campaign(world, labels=("onc", "card"))
    given = []
    for minute, user in enumerate([a, b, a, b]):
        q = claim_next(db, cid, user, T0)
        answer(db, q.item_id, user, "no", now=T0 + dt.timedelta(minutes=10 - minute))  # stored late, given early
        given.append((q.document_id, q.label_id))
    with db.session() as s:  # a row written again (PostgreSQL moves it to the end of the table)
        s.execute(update(Annotation).where(Annotation.document_id == given[-1][0], Annotation.label_id == given[-1][1])
                  .values(seconds=3.0))
    answers, _ = _campaign_answers(db, cid)
    assert list(answers) == given[::-1]  # by the time each was given


def test_removed_documents_are_not_shown_and_a_stopped_campaign_asks_nothing(world):
    db, a = world["db"], world["users"][0]
    cid = campaign(world)
    with db.session() as s:
        s.execute(update(Document).where(Document.id == world["docs"][0]).values(removed=True))
    assert claim_next(db, cid, a, T0).document_id != world["docs"][0]
    set_status(db, cid, "paused", None)
    assert claim_next(db, cid, a, T0 + dt.timedelta(hours=1)) is None
    set_status(db, cid, "active", None)
    set_status(db, cid, "stopped", None)
    assert claim_next(db, cid, a, T0) is None
    with pytest.raises(XmtcError, match="is stopped"):
        set_status(db, cid, "active", None)
    with db.session() as s:
        assert {i.status for i in s.scalars(select(QueueItem))} <= {"retired", "answered"}


def test_progress_counts_per_label_and_per_sme(world):
    db, (a, b, _) = world["db"], world["users"]
    cid = campaign(world)
    for user, value in ((a, "yes"), (b, "skip"), (b, "no"), (a, "unsure")):
        q = claim_next(db, cid, user, T0)
        answer(db, q.item_id, user, value, shown_at=T0, now=T0 + dt.timedelta(seconds=2))
    progress = campaign_progress(db, cid)
    assert progress.labels == [{"label": "Oncology", "asked": 3, "yes": 1, "no": 1, "unsure": 1}]
    assert {u["SME"]: u["answers"] for u in progress.annotators} == {"sme0": 2, "sme1": 1}
    assert progress.annotators[0]["median seconds"] == 2.0


def test_unknown_answers_are_refused(world):
    cid = campaign(world)
    q = claim_next(world["db"], cid, world["users"][0], utcnow())
    with pytest.raises(XmtcError, match="Unknown answer"):
        answer(world["db"], q.item_id, world["users"][0], "maybe")


def test_eight_smes_answering_concurrently_store_every_answer_exactly_once(world, db):
    import random
    import threading
    import time

    from core.accounts.auth import create_user as make_user

    pid, labels = world["pid"], world["labels"]
    with db.session() as s:  # a bigger pool: 60 documents
        for i in range(60):
            s.add(Document(project_id=pid, external_id=f"x{i}", title=f"Doc {i}", abstract="text", split="train"))
    with db.session() as s:
        docs = list(s.scalars(select(Document.id)))
    store_pools(db, pid, {labels["mi"]: [(d, 0.5) for d in docs]}, None)
    cid = create_campaign(db, pid, "load", [labels["mi"]], None, CampaignConfig(lease_s=1, train_after_positives=10**6))
    add_questions(db, cid, [(d, labels["mi"]) for d in docs], None, 0)
    smes = [make_user(db, f"load{i}", "long enough", "annotator").id for i in range(8)]
    stored: list[tuple[int, int, str]] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    lost: list[str] = []  # an answer given within its lease and refused: a lease lost
    late: list[str] = []  # an answer given after walking away past the lease and refused: expected

    def sme(user_id: int, seed: int) -> None:
        rng = random.Random(seed)
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            try:
                q = claim_next(db, cid, user_id)
                if q is None:
                    time.sleep(0.05)
                    continue
                walked_away = rng.random() < 0.1
                if walked_away:
                    time.sleep(1.1)  # the lease runs out: the late answer may be refused
                value = rng.choice(["yes", "no", "unsure", "skip"])
                try:
                    answer(db, q.item_id, user_id, value)
                except AnswerConflict as exc:
                    with lock:
                        (late if walked_away else lost).append(str(exc))
                    continue
                with lock:
                    stored.append((q.item_id, user_id, value))
            except Exception as exc:  # anything else is a bug
                errors.append(exc)
                return

    threads = [threading.Thread(target=sme, args=(u, i)) for i, u in enumerate(smes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert lost == [], lost  # no answer within its lease was refused
    assert all("taken over by another SME" in m or "answered" in m for m in late), late
    with db.session() as s:
        rows = s.execute(select(Annotation.queue_item_id, Annotation.user_id, Annotation.answer)).all()
        items = {i.id: i for i in s.scalars(select(QueueItem).where(QueueItem.campaign_id == cid))}
    assert sorted(map(tuple, rows)) == sorted(stored)  # every acknowledged answer stored, exactly once
    real = [(i, v) for i, _, v in rows if v != "skip"]
    assert len(real) == len({i for i, _ in real})  # no question answered twice
    assert all(items[i].status == "answered" for i, _ in real)
    # No lease lost: every question is answered, open, or held by someone (lease running or claimable again).
    assert {i.status for i in items.values()} <= {"answered", "open", "claimed"}
    assert len(real) > 40


def test_a_label_deleted_mid_campaign_is_no_longer_asked_about(world):
    db, a = world["db"], world["users"][0]
    cid = campaign(world, labels=("onc", "card"))
    with db.session() as s:
        s.execute(update(Label).where(Label.id == world["labels"]["onc"]).values(deprecated=True))
    asked = []
    while (q := claim_next(db, cid, a, T0)) is not None:
        asked.append(q.label_id)
        answer(db, q.item_id, a, "no", now=T0)
    assert asked and set(asked) == {world["labels"]["card"]}


def test_question_waiting_tells_a_waiting_page_what_claim_next_would_do(world):
    from core.newlabels.campaigns import question_waiting

    db, (a, b, _) = world["db"], world["users"]
    cid = create_campaign(db, world["pid"], "c", [world["labels"]["onc"]], None, CampaignConfig())
    assert not question_waiting(db, cid, a, T0)  # the first fill has not come yet
    add_questions(db, cid, [(world["docs"][0], world["labels"]["onc"])], None, 0)
    assert question_waiting(db, cid, a, T0) and question_waiting(db, cid, b, T0)
    q = claim_next(db, cid, a, T0)
    assert question_waiting(db, cid, a, T0) and not question_waiting(db, cid, b, T0)  # a holds it
    answer(db, q.item_id, a, "skip", now=T0)  # back in the queue, but never for a again
    assert not question_waiting(db, cid, a, T0) and question_waiting(db, cid, b, T0)
