"""Ranking metrics for multi-label prediction: P@k, R@k, F1@k, nDCG@k (binary relevance)."""

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
    p, r = precision_at_k(ranked, gold, k), recall_at_k(ranked, gold, k)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def ndcg_at_k(ranked: Sequence[int], gold: set[int], k: int) -> float:
    """Binary-relevance nDCG: DCG of the top-``k`` over the DCG of an ideal ranking."""
    if not gold:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, x in enumerate(ranked[:k]) if x in gold)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(gold))))
    return dcg / ideal


METRICS = {"P": precision_at_k, "R": recall_at_k, "F1": f1_at_k, "nDCG": ndcg_at_k}


def evaluate(rankings: Iterable[Sequence[int]], golds: Iterable[Iterable[int]],
             names: Iterable[str] = ("P@1", "P@5", "R@10", "nDCG@10", "R@30")) -> dict[str, float]:
    """Mean of each named metric (``"P@5"``, ``"nDCG@10"``, ...) over documents.

    Documents without gold labels are skipped (they have no recall to measure).
    """
    wanted = [(n, METRICS[n.split("@")[0]], int(n.split("@")[1])) for n in names]
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
