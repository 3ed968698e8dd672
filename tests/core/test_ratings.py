"""Test-set rating by SMEs: what is offered, all-or-nothing saving, one rating set per SME and document."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.errors import XmtcError
from core.evaluation.ratings import next_to_rate, rate_document
from core.model.labels import Prediction
from core.model.predictions import store_predictions
from storage.models import Document, Label, Rating
from tests.fakes import empty_version


@pytest.fixture
def predicted(world):
    db = world["db"]
    with db.session() as s:
        test_doc = s.scalar(select(Document.id).where(Document.split == "test"))
        labels = list(s.scalars(select(Label.id).order_by(Label.id)))
    store_predictions(db, world["version"], [test_doc], [[Prediction(lab, 1.0 - i / 10, 0.5) for i, lab in
                                                          enumerate(labels[:3])]])
    return {**world, "doc": test_doc, "predicted": labels[:3]}


def test_an_sme_rates_every_predicted_label_once(predicted):
    db, (a, b, _) = predicted["db"], predicted["users"]
    task = next_to_rate(db, predicted["pid"], predicted["version"], a)
    assert task.document_id == predicted["doc"] and [lab for lab, _ in task.labels] == predicted["predicted"]
    first, second, third = predicted["predicted"]
    with pytest.raises(XmtcError, match="still unrated"):
        rate_document(db, predicted["pid"], predicted["version"], task, a, {first: 2, second: 0}, 5.0, False)
    with pytest.raises(XmtcError, match="0, 1 or 2"):
        rate_document(db, predicted["pid"], predicted["version"], task, a, {first: 2, second: 0, third: 3}, 5.0, False)
    assert rate_document(db, predicted["pid"], predicted["version"], task, a, {first: 2, second: 0, third: 1}, 5.0,
                         False) == 3
    with pytest.raises(XmtcError, match="rated this document already"):
        rate_document(db, predicted["pid"], predicted["version"], task, a, {first: 0, second: 0, third: 0}, 1.0, False)
    assert next_to_rate(db, predicted["pid"], predicted["version"], a) is None  # nothing left for a
    assert next_to_rate(db, predicted["pid"], predicted["version"], b).document_id == predicted["doc"]  # b may rate it
    with db.session() as s:
        rows = {r.label_id: r.rating for r in s.scalars(select(Rating))}
    assert rows == {first: 2, second: 0, third: 1}


def test_a_label_rated_under_one_version_is_not_asked_again_for_another(predicted, data_dir):
    from core.evaluation.ratings import disagreements, versions_with_predictions

    db, pid, (a, _, _) = predicted["db"], predicted["pid"], predicted["users"]
    first, second, third = predicted["predicted"]
    other = empty_version(db, pid, data_dir / "models", "baseline")
    extra = next(i for i in predicted["labels"].values() if i not in predicted["predicted"])
    store_predictions(db, other, [predicted["doc"]], [[Prediction(third, 0.9, 0.9), Prediction(extra, 0.8, 0.8)]])
    assert [n for _, n in versions_with_predictions(db, pid)] == ["v2 (baseline)", "v1 (bicross)"]
    with db.session() as s:
        s.add(Rating(project_id=pid, document_id=predicted["doc"], label_id=third, model_version_id=other, kind="llm",
                     rater="llm:m", rating=2, explanation="central"))
    task = next_to_rate(db, pid, predicted["version"], a)
    assert task.llm == {third: (2, "central")}  # the LLM's rating of the pair, collected for the other version
    rate_document(db, pid, predicted["version"], task, a, {first: 2, second: 0, third: 1}, 5.0, False)
    assert disagreements(task, {first: 2, second: 0, third: 1}) == (1, ["Label: you 1, LLM 2 (central)".replace(
        "Label", dict(task.labels)[third])])
    later = next_to_rate(db, pid, other, a)
    assert [lab for lab, _ in later.labels] == [extra]  # `third` was rated already, under v1
    rate_document(db, pid, other, later, a, {extra: 0}, 2.0, True)
    assert next_to_rate(db, pid, other, a) is None
