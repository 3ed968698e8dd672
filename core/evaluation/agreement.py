"""Agreement between two raters on the 0/1/2 relevance scale: percent, Cohen's kappa and the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

THREE_POINT = (0, 1, 2)
TWO_POINT = (0, 1)  # 0 irrelevant; 1 relevant (1 "somewhat" and 2 "highly" merged)


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

    Kappa is (p_o - p_e) / (1 - p_e) with p_o the observed agreement and p_e the agreement expected by
    chance from each rater's marginals (the same value as scikit-learn's ``cohen_kappa_score``; computed here
    from the matrix because the Evaluate page needs it for hundreds of branches at once).

    Raises:
        ValueError: the two sequences differ in length, or hold a value off the scale.
    """
    if len(first) != len(second):
        raise ValueError("both raters must rate the same items")
    n, k = len(first), len(scale)
    if n == 0:
        return Agreement(0, None, None, [[0] * k for _ in scale], scale)
    index = {v: i for i, v in enumerate(scale)}
    try:
        cells = np.fromiter((index[a] * k + index[b] for a, b in zip(first, second, strict=True)), dtype=np.int64,
                            count=n)
    except KeyError as exc:
        raise ValueError(f"rating {exc.args[0]!r} is not on the scale {scale}") from None
    return from_matrix(np.bincount(cells, minlength=k * k).reshape(k, k), scale)


def from_matrix(matrix: np.ndarray, scale: tuple[int, ...]) -> Agreement:
    """Agreement from a confusion matrix (rows: first rater, columns: second rater, in ``scale`` order)."""
    n = int(matrix.sum())
    if n == 0:
        return Agreement(0, None, None, matrix.astype(int).tolist(), scale)
    observed = float(np.trace(matrix)) / n
    chance = float(matrix.sum(axis=1) @ matrix.sum(axis=0)) / (n * n)
    # Kappa is undefined when chance agreement is certain (both raters used a single, identical class).
    kappa = None if chance >= 1.0 else (observed - chance) / (1 - chance)
    return Agreement(n, observed, kappa, matrix.astype(int).tolist(), scale)


def merge_two_point(matrix: np.ndarray) -> np.ndarray:
    """The 2-point confusion matrix of a 3-point one (1 and 2 merged)."""
    return np.array([[matrix[0, 0], matrix[0, 1:].sum()], [matrix[1:, 0].sum(), matrix[1:, 1:].sum()]])


def agreement_scales(first: Sequence[int], second: Sequence[int]) -> dict[str, Agreement]:
    """Agreement on the 3-point scale and on the 2-point scale (1 and 2 merged, from the 3-point matrix)."""
    three = agreement(first, second, THREE_POINT)
    return {"3-point": three, "2-point": from_matrix(merge_two_point(np.array(three.matrix)), TWO_POINT)}
