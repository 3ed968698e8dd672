"""The Annotate page's campaign flows in AppTest: claim, answer, undo, skip, lease expiry, training, re-ranking."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from core.model.versions import register_version, write_bundle
from core.newlabels.campaigns import add_questions
from core.newlabels.jobs import store_pools
from storage.models import Annotation, Document, Job, Label, QueueItem
from tests.pages.conftest import signed_in, texts


def click(at, label_start):
    next(b for b in at.button if b.label.startswith(label_start)).click().run()
    assert not at.exception
    return at


def answers(db):
    with db.session() as s:
        return [(a.document_id, a.answer) for a in s.scalars(select(Annotation).order_by(Annotation.id))]


def test_an_sme_answers_with_each_button_and_undoes(campaign):
    db = campaign["db"]
    at = signed_in("pages/1_Annotate.py", campaign["annotator"])
    shown = texts(at)
    assert "Label: Oncology" in shown and "Keys: Y yes" in shown
    assert [b.label for b in at.button][:5] == ["Yes (Y)", "No (N)", "Unsure (U)", "Skip (S)", "Undo my last answer (Z)"]
    first, second, third = campaign["docs"]
    click(at, "Yes")
    click(at, "No")
    assert answers(db) == [(first, "yes"), (second, "no")]
    click(at, "Undo")
    assert answers(db) == [(first, "yes")] and "taken back" in texts(at)
    click(at, "Unsure")
    assert answers(db) == [(first, "yes"), (second, "unsure")]
    click(at, "Skip")
    assert answers(db)[-1] == (third, "skip")
    assert "No question is waiting for you" in texts(at)  # the skipped one is for someone else
    with db.session() as s:
        row = s.scalar(select(Annotation).where(Annotation.document_id == first))
    assert row.seconds is not None and row.seconds >= 0 and row.model_version_id == campaign["version"]


def test_a_training_job_is_queued_after_the_threshold_and_the_page_says_so(campaign):
    db = campaign["db"]
    at = signed_in("pages/1_Annotate.py", campaign["annotator"])
    click(at, "Yes")
    click(at, "Yes")
    assert "retraining in the background" in texts(at)
    with db.session() as s:
        assert [j.kind for j in s.scalars(select(Job).where(Job.status == "queued"))] == ["al_iteration"]


def test_the_page_says_when_questions_were_re_ranked_by_a_new_model(campaign, data_dir):
    db, pid = campaign["db"], campaign["project"]
    at = signed_in("pages/1_Annotate.py", campaign["annotator"])
    click(at, "No")
    newer = register_version(db, pid, "bicross", write_bundle(data_dir / "models", pid, "bicross", lambda f: {}),
                             {}, {}, None, activate=True)
    with db.session() as s:  # what the AL job does: unclaimed questions re-ranked by the new version
        s.execute(update(QueueItem).where(QueueItem.status == "claimed").values(status="open", claimed_by=None))
    add_questions(db, campaign["campaign"], [(d, campaign["label"]) for d in reversed(campaign["docs"])], newer, 2)
    at.run()
    assert "questions are now ranked by the new version" in texts(at)


def test_an_expired_lease_gives_the_question_to_another_sme(campaign):
    db = campaign["db"]
    at = signed_in("pages/1_Annotate.py", campaign["annotator"])
    with db.session() as s:
        held = s.scalar(select(QueueItem).where(QueueItem.status == "claimed"))
        s.execute(update(QueueItem).where(QueueItem.id == held.id)
                  .values(lease_until=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
    lead = signed_in("pages/1_Annotate.py", campaign["admin"])
    with db.session() as s:
        assert s.get(QueueItem, held.id).claimed_by == campaign["admin"]
    click(at, "Yes")  # the stale tab of the first SME
    assert "taken over by another SME" in texts(at) and answers(db) == []
    click(lead, "No")
    assert answers(db) == [(held.document_id, "no")]


def test_a_lead_pauses_and_stops_a_campaign_and_sees_progress(campaign):
    at = signed_in("pages/1_Annotate.py", campaign["admin"])
    click(at, "Yes")
    click(at, "Pause")
    assert "The lead paused this campaign" in texts(at)
    click(at, "Resume")
    at.radio(key="annotate_view").set_value("Campaign progress").run()
    shown = texts(at)
    assert "Asked 1" in shown and "Yes 1" in shown
    assert at.dataframe[0].value["label"].tolist() == ["Oncology"]
    click(at, "Stop")
    at.radio(key="annotate_view").set_value("Answer questions").run()
    assert "This campaign is stopped" in texts(at)


def test_the_campaign_form_offers_only_labels_with_a_pool(seeded, data_dir):
    """A campaign asks about pools: without one the form says where pools are built; with them it offers exactly the
    pooled labels (a library's taxonomy has 41k subjects, its pools a few dozen)."""
    db, pid = seeded["db"], seeded["project"]
    register_version(db, pid, "bicross", write_bundle(data_dir / "models", pid, "bicross", lambda f: {}), {}, {}, None,
                     activate=True)
    at = signed_in("pages/1_Annotate.py", seeded["admin"])
    assert "No label has a document pool yet" in texts(at) and not at.multiselect
    with db.session() as s:
        onc = s.scalar(select(Label.id).where(Label.external_id == "onc"))
        docs = s.scalars(select(Document.id).where(Document.project_id == pid).limit(2)).all()
    store_pools(db, pid, {onc: [(d, 0.5) for d in docs]}, None)
    at = signed_in("pages/1_Annotate.py", seeded["admin"])
    assert len(at.multiselect[0].options) == 1 and at.multiselect[0].options[0].startswith("Oncology")
    at.text_input[0].input("First")
    at.multiselect[0].select(onc)
    click(at, "Start the campaign")
    assert "Preparing the first questions" in texts(at)  # started: its first job is on the way


def test_rating_mode_rates_the_top_labels_blind_or_with_the_llm(seeded, data_dir):
    from core.model.labels import Prediction
    from core.model.predictions import store_predictions
    from storage.models import Rating

    db, pid = seeded["db"], seeded["project"]
    version = register_version(db, pid, "bicross", write_bundle(data_dir / "models", pid, "bicross", lambda f: {}),
                               {}, {}, None, activate=True)
    with db.session() as s:
        doc = s.scalar(select(Document.id).where(Document.split == "test"))
        card, onc = (s.scalar(select(Label.id).where(Label.external_id == x)) for x in ("card", "onc"))
        s.add(Rating(project_id=pid, document_id=doc, label_id=card, model_version_id=version, kind="llm",
                     rater="llm:fake", rating=2, explanation="The abstract is about the heart."))
    store_predictions(db, version, [doc], [[Prediction(card, 0.9, 0.9), Prediction(onc, 0.5, 0.5)]])
    at = signed_in("pages/1_Annotate.py", seeded["annotator"])
    at.radio(key="annotate_view").set_value("Rate test documents").run()
    assert "Cardio-oncology" in texts(at)
    assert "The abstract is about the heart" not in texts(at)  # blind by default
    at.toggle(key="rate_show_llm").set_value(True).run()
    assert "LLM: 2 · The abstract is about the heart." in texts(at)
    assert at.radio(key=f"rate_{doc}_{card}_llm").value == 2  # starts at the LLM's score: the SME confirms it
    click(at, "Save the ratings")
    assert "still unrated" in texts(at)
    at.radio(key=f"rate_{doc}_{onc}_llm").set_value(1)
    click(at, "Save the ratings")
    assert "Saved your ratings" in texts(at) and "No test document" in texts(at)
    with db.session() as s:
        rows = {(r.label_id, r.rating, r.llm_shown) for r in s.scalars(select(Rating).where(Rating.kind == "sme"))}
    assert rows == {(card, 2, True), (onc, 1, True)}
    # The admin rates the same document blind; the LLM's view is revealed only after saving.
    admin = signed_in("pages/1_Annotate.py", seeded["admin"])
    admin.radio(key="annotate_view").set_value("Rate test documents").run()
    assert "The abstract is about the heart" not in texts(admin)
    admin.radio(key=f"rate_{doc}_{card}").set_value(0)
    admin.radio(key=f"rate_{doc}_{onc}").set_value(2)
    click(admin, "Save the ratings")
    shown = texts(admin)
    assert "The LLM agreed on 0 of 1 labels: Cardiology: you 0, LLM 2 (The abstract is about the heart.)" in shown
    with db.session() as s:
        blind = {(r.label_id, r.rating, r.llm_shown) for r in s.scalars(select(Rating).where(
            Rating.kind == "sme", Rating.user_id == seeded["admin"]))}
    assert blind == {(card, 0, False), (onc, 2, False)}


def test_the_progress_view_plots_new_and_old_label_recall_per_iteration(campaign, data_dir):
    db, pid = campaign["db"], campaign["project"]
    for it, (answered, new, old) in enumerate([(0.2, 0.1, 0.41), (0.5, 0.3, 0.40)], start=1):
        register_version(db, pid, "bicross", write_bundle(data_dir / "models", pid, "bicross", lambda f: {}),
                         {"campaign_id": campaign["campaign"], "iteration": it, "learned": 10 * it,
                          "seconds.sparse": 2.0 * it, "cross.examples": 8, "cross_check.cross_auc": 0.9,
                          "cross_check.first_auc": 0.7},
                         {"answered_R@10": answered, "heldout_R@10": new, "old_R@10": old}, None)
    at = signed_in("pages/1_Annotate.py", campaign["admin"])
    at.radio(key="annotate_view").set_value("Campaign progress").run()
    assert not at.exception
    assert "Recall@10 per iteration" in texts(at)
    table = at.dataframe[-1].value  # the iterations: answers learned, seconds, the re-ranker's decision
    assert list(table["learned"]) == [10, 20] and list(table["seconds"]) == [2.0, 4.0]
    assert list(table["re-ranker"]) == ["trained (AUC 0.90 vs first stage 0.70)"] * 2
    spec = " ".join(str(c.proto) for c in at.get("vega_lite_chart"))
    assert all(k in spec for k in ("answered_R@10", "heldout_R@10", "old_R@10")), spec[:500]
