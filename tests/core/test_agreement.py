"""Agreement metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from core.evaluation.agreement import agreement, agreement_scales, merge_two_point

# A worked example: ten (LLM, SME) pairs.
LLM = [2, 2, 1, 0, 0, 1, 2, 0, 1, 2]
SME = [2, 1, 1, 0, 1, 1, 2, 0, 0, 2]


def test_three_point_agreement_and_kappa_by_hand():
    # Agreements: (2,2) x3, (1,1) x2, (0,0) x2 -> 7/10.
    # Marginals LLM 0:3 1:3 2:4, SME 0:3 1:4 2:3 -> chance = (3*3 + 3*4 + 4*3) / 100 = 0.33.
    # kappa = (0.70 - 0.33) / (1 - 0.33) = 0.37 / 0.67.
    a = agreement(LLM, SME)
    assert a.n == 10 and a.percent == pytest.approx(0.7)
    assert a.kappa == pytest.approx(0.37 / 0.67)
    assert a.matrix == [[2, 1, 0], [1, 2, 0], [0, 1, 3]]  # rows LLM, columns SME


def test_two_point_scale_merges_somewhat_and_highly_relevant():
    # LLM -> 1 1 1 0 0 1 1 0 1 1 ; SME -> 1 1 1 0 1 1 1 0 0 1 : 8/10 agree.
    # Marginals 0:3 1:7 for both -> chance = (9 + 49) / 100 = 0.58; kappa = 0.22 / 0.42.
    scales = agreement_scales(LLM, SME)
    assert merge_two_point(np.array([[2, 1, 0], [1, 2, 0], [0, 1, 3]])).tolist() == [[2, 1], [1, 6]]
    assert scales["2-point"].percent == pytest.approx(0.8)
    assert scales["2-point"].kappa == pytest.approx(0.22 / 0.42)
    assert scales["2-point"].matrix == [[2, 1], [1, 6]]
    assert scales["3-point"].kappa == pytest.approx(0.37 / 0.67)


def test_degenerate_cases():
    assert agreement([], []).percent is None and agreement([], []).kappa is None
    same = agreement([2, 2, 2], [2, 2, 2])
    assert same.percent == 1.0 and same.kappa is None  # one class only: kappa is undefined, not 1 or 0
    opposite = agreement([0, 2, 0, 2], [2, 0, 2, 0])
    assert opposite.percent == 0.0 and opposite.kappa == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        agreement([0], [0, 1])


def test_kappa_matches_scikit_learn_on_random_ratings():
    import random

    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    rng = random.Random(7)
    for _ in range(20):
        n = rng.randint(2, 60)
        a = [rng.choice([0, 0, 1, 2]) for _ in range(n)]
        b = [x if rng.random() < 0.6 else rng.choice([0, 1, 2]) for x in a]
        got = agreement(a, b)
        assert got.matrix == confusion_matrix(a, b, labels=[0, 1, 2]).tolist()
        if got.kappa is not None:
            assert got.kappa == pytest.approx(cohen_kappa_score(a, b, labels=[0, 1, 2]))


def test_a_rating_off_the_scale_is_an_error():
    with pytest.raises(ValueError, match="not on the scale"):
        agreement([3], [0])
