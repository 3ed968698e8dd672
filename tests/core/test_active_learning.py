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

    def evaluate(r, iteration):
        calls.append(iteration)
        return {"score": float(len(calls))}

    history = al.run(SimulatedOracle(NEW_GOLD), iterations=2, evaluate=evaluate)
    assert [h.number for h in history] == [0, 1, 2]
    assert [h.metrics["score"] for h in history] == [1.0, 2.0, 3.0] and calls == [0, 1, 2]
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
    assert al.train() == {"skipped": "no new positive answer yet"}
    assert al.select(10) and (10, 100) not in al.select(10)  # asked once, never again


def test_a_label_already_in_the_taxonomy_and_empty_pools_are_refused(ranker):
    with pytest.raises(XmtcError, match="already in the model's taxonomy"):
        ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, {1: "Myocardial Infarction"}, {1: [10]})
    with pytest.raises(XmtcError, match="empty document pool"):
        ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, NEW, {100: []})


def test_a_pool_larger_than_the_corpus_is_simply_the_corpus(ranker):
    al = ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, NEW, {100: sorted(TEXTS) * 3}, ALConfig())
    assert sorted(al.pools[100]) == sorted(TEXTS)


def test_each_iteration_trains_on_fresh_answers_plus_recalled_earlier_ones(ranker):
    al = cycle(ranker, recall_ratio=1.0, replay_ratio=0.0)
    al.record([(10, 100), (11, 100)], ["yes", "no"])
    first = al.train()
    assert (first["fresh"], first["positives"]) == (1, 1)
    assert al.train() == {"skipped": "no new positive answer yet"}  # nothing new: no retraining on old answers
    al.record([(13, 100), (15, 100)], ["yes", "yes"])
    second = al.train()
    assert (second["fresh"], second["positives"]) == (2, 3)  # 2 fresh + the 1 earlier "yes" (ratio 1, capped)
    assert set(second["seconds"]) >= {"bi", "labels", "cross"}


def test_a_new_labels_prior_starts_typical_and_follows_confirmed_answers(ranker):
    typical = ranker.typical_frequency()
    al = cycle(ranker)
    row = ranker.table.row(100)
    assert ranker.table.freq[row] == typical > 0
    al.base_freq = 1.0
    al.record([(10, 100), (13, 100), (15, 100), (11, 100)], ["yes", "yes", "yes", "no"])
    assert ranker.table.freq[row] == 3.0  # the confirmed count once it passes the typical frequency


def test_only_the_head_of_each_pool_is_rescored(ranker):
    order = [11, 12, 14, 10, 13, 15]  # the adapted encoder's order: the pancreatic documents last
    al = ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, NEW, {100: order}, ALConfig(rerank_window=3))
    al.record([(11, 100)], ["no"])
    ranked = al.ranked_pools()[100]
    assert set(ranked[:3]) == {12, 14, 10} and ranked[0] == 10  # head re-scored: the pancreatic one first
    assert ranked[3:] == [13, 15] and 11 not in ranked  # the tail keeps its order; asked documents leave


def test_a_label_with_an_empty_pool_is_reported_and_the_others_go_on(ranker):
    al = ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, {100: "Pancreatic Neoplasms", 101: "Rare Thing"},
                             {100: [10, 13], 101: []}, ALConfig())
    assert al.empty_pools == ["Rare Thing"]
    assert {lab for _, lab in al.select(5)} == {100}
    with pytest.raises(XmtcError, match="have no text"):
        ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, {102: "X"}, {102: [10, 999]})


def test_two_iterations_on_real_pubmed_documents(shared_data, encoder_path):
    from core.demo import NEW_LABELS, read_demo_corpus
    from core.reports import ImportReport

    new_name = (shared_data / NEW_LABELS).read_text().split("\n")[0].strip()
    train = [r for r in read_demo_corpus(shared_data, ImportReport()) if r.split == "train"]
    positives = [r for r in train if new_name in r.labels][:4]
    others = [r for r in train if new_name not in r.labels][:8]
    docs = positives + others
    names = sorted({n for r in docs for n in r.labels} - {new_name})
    ids = {n: i for i, n in enumerate(names)}
    texts = {i: r.text for i, r in enumerate(docs)}
    old_gold = {i: {ids[n] for n in r.labels if n != new_name} for i, r in enumerate(docs)}
    new_id = len(names)
    bi = load_bi_encoder(encoder_path, "cpu", 64)
    ranker = BiCrossRanker.build(bi, make_label_table([LabelRow(i, n, n) for n, i in ids.items()], list(old_gold.values())),
                                 cross=CrossScorer(encoder_path, "cpu", 64))
    al = ActiveLearningCycle(ranker, texts, old_gold, {new_id: new_name}, {new_id: sorted(texts)},
                             ALConfig(questions_per_iteration=6, train_batch=4))
    vector = ranker.vectors[ranker.table.row(new_id)].copy()

    def recall(r, _):
        top = r.rank([texts[i] for i in range(len(positives))], k=10, rerank=False)
        return {"R@10": sum(new_id in [p.label_id for p in t] for t in top) / len(top)}

    oracle = SimulatedOracle({i: ({new_id} if i < len(positives) else set()) for i in texts})
    history = al.run(oracle, iterations=2, evaluate=recall)
    assert len(history) == 3 and all("R@10" in h.metrics for h in history)
    assert sum(h.asked for h in history) == 12 and sum(h.positives for h in history) == len(positives)
    assert not np.allclose(vector, ranker.vectors[ranker.table.row(new_id)], atol=1e-4)  # the new label moved
