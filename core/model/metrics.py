"""Ranking metrics for multi-label prediction: P@k, R@k, F1@k, nDCG@k (binary relevance), and Annif's NDCG.

F1@k is Annif's (``annif/eval.py``): per document 2·|top-k ∩ gold| / (|top-k| + |gold|). ``NDCG`` (no @) is Annif's
too: the DCG of the (up to ``ANNIF_LIMIT``) suggestions over the DCG of an ideal ordering of *all* gold labels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def precision_at_k(ranked: Sequence[int], gold: set[int], k: int) -> float:
    """Share of the top-``k`` that is gold (divides by ``k`` even when fewer were ranked)."""
    return sum(1 for x in ranked[:k] if x in gold) / k


def recall_at_k(ranked: Sequence[int], gold: set[int], k: int) -> float:
    """Share of the gold labels found in the top-``k`` (0 when there is no gold label)."""
    if not gold:
        return 0.0
    return sum(1 for x in ranked[:k] if x in gold) / len(gold)


def f1_at_k(ranked: Sequence[int], gold: set[int], k: int) -> float:
    """2·|top-k ∩ gold| / (|top-k| + |gold|) (Annif's per-document F1 of its first ``k`` suggestions)."""
    top = ranked[:k]
    hits = sum(1 for x in top if x in gold)
    return 0.0 if not top and not gold else 2 * hits / (len(top) + len(gold))


def ndcg_at_k(ranked: Sequence[int], gold: set[int], k: int) -> float:
    """Binary-relevance nDCG: DCG of the top-``k`` over the DCG of an ideal ranking."""
    if not gold:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, x in enumerate(ranked[:k]) if x in gold)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(gold))))
    return dcg / ideal


ANNIF_LIMIT = 20  # suggestions per document in Annif's evaluations (annif eval --limit 20)


def annif_ndcg(ranked: Sequence[int], gold: set[int], k: int = ANNIF_LIMIT) -> float:
    """Annif's NDCG: DCG of the first ``k`` suggestions over the DCG of all gold labels in an ideal order."""
    if not gold:
        return 1.0  # Annif's "no relevant label" case
    dcg = sum(1.0 / math.log2(i + 2) for i, x in enumerate(ranked[:k]) if x in gold)
    return dcg / sum(1.0 / math.log2(i + 2) for i in range(len(gold)))


METRICS = {"P": precision_at_k, "R": recall_at_k, "F1": f1_at_k, "nDCG": ndcg_at_k, "NDCG": annif_ndcg}


def evaluate(rankings: Iterable[Sequence[int]], golds: Iterable[Iterable[int]],
             names: Iterable[str] = ("P@1", "P@5", "R@10", "nDCG@10", "R@30")) -> dict[str, float]:
    """Mean of each named metric (``"P@5"``, ``"nDCG@10"``, ``"F1@5"``, Annif's ``"NDCG"``, ...) over documents.

    Documents without gold labels are skipped (they have no recall to measure).
    """
    wanted = [(n, METRICS[n.split("@")[0]], int(n.split("@")[1]) if "@" in n else ANNIF_LIMIT) for n in names]
    sums = dict.fromkeys([n for n, _, _ in wanted], 0.0)
    count = 0
    for ranked, gold in zip(rankings, golds, strict=True):
        gold = set(gold)
        if not gold:
            continue
        count += 1
        for name, fn, k in wanted:
            sums[name] += fn(list(ranked), gold, k)
    return {n: (v / count if count else 0.0) for n, v in sums.items()}
