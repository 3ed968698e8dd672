"""Agreement between two raters on the 0/1/2 relevance scale: percent, Cohen's kappa and the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

THREE_POINT = (0, 1, 2)
TWO_POINT = (0, 1)  # 0 irrelevant; 1 relevant (1 "somewhat" and 2 "highly" merged)


def two_point(rating: int) -> int:
    """The 2-point scale of a 0/1/2 rating: somewhat and highly relevant merge into relevant."""
    return 0 if rating == 0 else 1


@dataclass(frozen=True)
class Agreement:
    """How often two raters agree, and Cohen's kappa (None where it is undefined: one class only)."""

    n: int
    percent: float | None
    kappa: float | None
    matrix: list[list[int]]  # rows: first rater, columns: second rater, in ``scale`` order
    scale: tuple[int, ...]


def agreement(first: Sequence[int], second: Sequence[int], scale: tuple[int, ...] = THREE_POINT) -> Agreement:
    """Percent agreement, Cohen's kappa and the confusion matrix of paired ratings.

    Raises:
        ValueError: the two sequences differ in length.
    """
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    if len(first) != len(second):
        raise ValueError("both raters must rate the same items")
    n = len(first)
    if n == 0:
        return Agreement(0, None, None, [[0] * len(scale) for _ in scale], scale)
    matrix = confusion_matrix(list(first), list(second), labels=list(scale)).tolist()
    percent = sum(matrix[i][i] for i in range(len(scale))) / n
    # Kappa is undefined when chance agreement is certain (both raters used a single, identical class).
    rows, cols = [sum(r) for r in matrix], [sum(c) for c in zip(*matrix, strict=True)]
    chance = sum(r * c for r, c in zip(rows, cols, strict=True)) / (n * n)
    kappa = None if chance >= 1.0 else float(cohen_kappa_score(list(first), list(second), labels=list(scale)))
    return Agreement(n, percent, kappa, matrix, scale)


def agreement_scales(first: Sequence[int], second: Sequence[int]) -> dict[str, Agreement]:
    """Agreement on the 3-point scale and on the 2-point scale (1 and 2 merged)."""
    return {"3-point": agreement(first, second, THREE_POINT),
            "2-point": agreement([two_point(x) for x in first], [two_point(x) for x in second], TWO_POINT)}
