from __future__ import annotations

import math

import pytest

from core.model.metrics import annif_ndcg, evaluate, f1_at_k, ndcg_at_k, precision_at_k, recall_at_k

RANKED = [3, 1, 7, 2, 9]
GOLD = {1, 2, 4}


def test_precision_and_recall_by_hand():
    assert precision_at_k(RANKED, GOLD, 1) == 0.0
    assert precision_at_k(RANKED, GOLD, 2) == 0.5
    assert precision_at_k(RANKED, GOLD, 5) == pytest.approx(2 / 5)
    assert recall_at_k(RANKED, GOLD, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, GOLD, 5) == pytest.approx(2 / 3)
    assert precision_at_k([1], GOLD, 5) == pytest.approx(1 / 5)  # short lists still divide by k


def test_f1_by_hand():
    p, r = 2 / 5, 2 / 3
    assert f1_at_k(RANKED, GOLD, 5) == pytest.approx(2 * p * r / (p + r))
    assert f1_at_k([8, 9], GOLD, 2) == 0.0
    # Annif's F1@5 counts the suggestions given: 2 of them, one right, 3 gold -> 2·1 / (2 + 3)
    assert f1_at_k([1, 9], GOLD, 5) == pytest.approx(2 / 5)


def test_annifs_ndcg_by_hand():
    # DCG of the suggestions over the ideal DCG of all gold labels, however many were suggested
    assert annif_ndcg(RANKED, GOLD) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 1 / 2))
    assert annif_ndcg([1], GOLD) == pytest.approx(1 / (1 + 1 / math.log2(3) + 1 / 2))  # one of three found, first
    many = [*range(100, 120), 1]  # the 21st suggestion is past Annif's limit of 20
    assert annif_ndcg(many, {1}) == 0.0 and evaluate([many], [{1}], ("NDCG", "F1@5")) == {"NDCG": 0.0, "F1@5": 0.0}


def test_ndcg_by_hand():
    # hits at ranks 2 and 4: DCG = 1/log2(3) + 1/log2(5); ideal for 3 gold in top-5: 1 + 1/log2(3) + 1/2
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3) + 1 / 2
    assert ndcg_at_k(RANKED, GOLD, 5) == pytest.approx(dcg / ideal)
    assert ndcg_at_k([1, 2, 4], GOLD, 3) == pytest.approx(1.0)


def test_evaluate_averages_and_skips_documents_without_gold():
    out = evaluate([[1, 2], [5, 6], [9]], [{1}, {6}, set()], names=("P@1", "R@2"))
    assert out == {"P@1": 0.5, "R@2": 1.0}


def test_evaluate_ranker_reads_the_top_k_after_excluded_labels_and_passes_vectors_and_options():
    from core.model.bicross import evaluate_ranker
    from core.model.labels import Prediction

    calls = []

    class Ranked:
        def rank(self, texts, k=10, **options):
            calls.append((len(texts), k, sorted(options), options.get("doc_vectors", [None])[0]))
            return [[Prediction(lab, 1.0 / lab, 0.0) for lab in range(1, k + 1)] for _ in texts]

    texts, gold = ["a", "b", "c"], [{2}, {2}, {9}]
    scores = evaluate_ranker(Ranked(), texts, gold, k=1, batch=2, metrics=("P@1",), doc_vectors=["va", "vb", "vc"],
                             exclude=frozenset({1}), rerank=False)
    assert scores["P@1"] == pytest.approx(2 / 3)  # label 1 taken out: label 2 is each document's first
    assert calls == [(2, 2, ["doc_vectors", "rerank"], "va"), (1, 2, ["doc_vectors", "rerank"], "vc")]
