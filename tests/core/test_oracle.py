from __future__ import annotations

from core.newlabels.oracle import SimulatedOracle


def test_the_simulated_oracle_answers_only_from_gold():
    oracle = SimulatedOracle({1: {10, 11}, 2: set()})
    assert oracle.answer([(1, 10), (1, 12), (2, 10), (3, 10)]) == ["yes", "no", "no", "unsure"]
    assert oracle.asked == 4
