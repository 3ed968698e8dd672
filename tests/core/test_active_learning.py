"""The active-learning cycle on a tiny real corpus with the bundled model."""

from __future__ import annotations

import numpy as np
import pytest

from core.active_learning import ActiveLearningCycle, ALConfig
from core.bicross import make_label_table
from core.encoders import load_bi_encoder
from core.errors import XmtcError
from core.oracle import SimulatedOracle
from core.ranker import BiCrossRanker
from core.taxonomy import LabelRow
from core.training import CrossScorer

OLD = [LabelRow(1, "mi", "Myocardial Infarction"), LabelRow(2, "bc", "Breast Neoplasms"), LabelRow(3, "hu", "Humans")]
TEXTS = {
    10: "Pancreatic cancer resection outcomes in older adults.",
    11: "Acute myocardial infarction and early angioplasty.",
    12: "Screening mammography for breast cancer.",
    13: "Chemotherapy for advanced pancreatic adenocarcinoma.",
    14: "Heart attack survivors after cardiac rehabilitation.",
    15: "Pancreatic neoplasms detected by endoscopic ultrasound.",
}
OLD_GOLD = {10: {3}, 11: {1}, 12: {2, 3}, 13: set(), 14: {1}, 15: {3}}
NEW = {100: "Pancreatic Neoplasms"}
NEW_GOLD = {10: {100}, 11: set(), 12: set(), 13: {100}, 14: set(), 15: {100}}


@pytest.fixture
def ranker(encoder_path):
    bi = load_bi_encoder(encoder_path, "cpu", 64)
    return BiCrossRanker.build(bi, make_label_table(OLD, list(OLD_GOLD.values())),
                               cross=CrossScorer(encoder_path, "cpu", 64))


def cycle(ranker, **overrides):
    cfg = ALConfig(questions_per_iteration=3, train_batch=4, **overrides)
    return ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, NEW, {100: sorted(TEXTS)}, cfg)


def test_new_labels_are_served_before_any_training(ranker):
    cycle(ranker)
    top = ranker.rank(["Pancreatic neoplasms and pancreatic cancer surgery"], k=2, rerank=False)[0]
    assert 100 in [p.label_id for p in top]


def test_two_iterations_change_the_model_record_metrics_and_never_repeat_a_question(ranker):
    al = cycle(ranker)
    before = ranker.embed_documents([TEXTS[10]])
    calls = []

    def evaluate(r):
        calls.append(1)
        return {"score": float(len(calls))}

    history = al.run(SimulatedOracle(NEW_GOLD), iterations=2, evaluate=evaluate)
    assert [h.number for h in history] == [0, 1, 2]
    assert [h.metrics["score"] for h in history] == [1.0, 2.0, 3.0]
    assert sum(h.asked for h in history) == 6 == len(al.answers)  # 6 distinct questions
    assert not np.allclose(before, ranker.embed_documents([TEXTS[10]]), atol=1e-5)
    assert al.answers_per_label() == {100: 6}
    assert history[1].train["bi"]["steps"] >= 1


def test_replay_mixes_the_configured_ratio(ranker):
    al = cycle(ranker, replay_ratio=2.0)
    al.record([(10, 100), (13, 100)], ["yes", "yes"])
    stats = al.train()
    assert stats["positives"] == 2 and stats["replay"] == 4
    assert all(lab in OLD_GOLD[d] for d, lab in al.replay_sample(5))


def test_unsure_answers_are_neither_positive_nor_negative(ranker):
    al = cycle(ranker)
    al.record([(10, 100), (11, 100)], ["unsure", "unsure"])
    assert al.train() == {"skipped": "no positive answer yet"}
    assert al.select(10) and (10, 100) not in al.select(10)  # asked once, never again


def test_a_label_already_in_the_taxonomy_and_empty_pools_are_refused(ranker):
    with pytest.raises(XmtcError, match="already in the model's taxonomy"):
        ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, {1: "Myocardial Infarction"}, {1: [10]})
    with pytest.raises(XmtcError, match="empty document pool"):
        ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, NEW, {100: []})


def test_a_pool_larger_than_the_corpus_is_simply_the_corpus(ranker):
    al = ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, NEW, {100: sorted(TEXTS) * 3}, ALConfig())
    assert sorted(al.pools[100]) == sorted(TEXTS)
