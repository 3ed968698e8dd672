"""Test-set rating by SMEs: what is offered, all-or-nothing saving, one rating set per SME and document."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.errors import XmtcError
from core.predictions import store_predictions
from core.ranker import Prediction
from core.ratings import next_to_rate, rate_document
from storage.models import Document, Label, Rating


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
