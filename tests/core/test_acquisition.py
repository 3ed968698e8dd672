"""One contract suite for every acquisition strategy, plus the greedy strategy worked by hand."""

from __future__ import annotations

import random

import pytest

from core.newlabels.acquisition import STRATEGIES, GreedyAcquisition, make_strategy

POOLS = {10: [1, 2, 3], 20: [4, 5], 30: [6]}


@pytest.fixture(params=sorted(STRATEGIES))
def strategy(request):
    return make_strategy(request.param)


def test_never_asks_an_asked_question_or_one_twice(strategy):
    asked = {(1, 10), (4, 20)}
    batch = strategy.select(POOLS, asked, 10, random.Random(0))
    assert len(batch) == len(set(batch))
    assert not set(batch) & asked
    assert all(d in POOLS[lab] for d, lab in batch)


def test_exhausted_pools_end_the_batch_early(strategy):
    everything = {(d, lab) for lab, pool in POOLS.items() for d in pool}
    assert len(strategy.select(POOLS, set(), 100, random.Random(1))) == len(everything)
    assert strategy.select(POOLS, everything, 5, random.Random(1)) == []


def test_the_same_seed_gives_the_same_batch(strategy):
    assert strategy.select(POOLS, set(), 4, random.Random(7)) == strategy.select(POOLS, set(), 4, random.Random(7))


class ScriptedRandom(random.Random):
    """A random source whose label choices are scripted, to work the greedy strategy by hand."""

    def __init__(self, picks):
        super().__init__(0)
        self.picks = list(picks)

    def choice(self, seq):
        pick = self.picks.pop(0)
        assert pick in seq, f"{pick} is no longer offered: {seq}"
        return pick


def test_greedy_worked_by_hand():
    # picks: 20 -> doc 4; 20 -> doc 5; 20 -> pool exhausted, label dropped; 10 -> doc 1; 30 -> doc 6;
    # 30 -> exhausted, dropped; 10 -> doc 2 (doc 1 was just taken).
    rng = ScriptedRandom([20, 20, 20, 10, 30, 30, 10])
    assert GreedyAcquisition().select(POOLS, set(), 5, rng) == [(4, 20), (5, 20), (1, 10), (6, 30), (2, 10)]
    assert rng.picks == []


def test_greedy_skips_asked_documents_in_rank_order():
    batch = GreedyAcquisition().select({10: [1, 2, 3]}, {(1, 10)}, 2, random.Random(0))
    assert batch == [(2, 10), (3, 10)]


def test_an_unknown_strategy_is_named():
    with pytest.raises(ValueError, match="use one of"):
        make_strategy("clever")


def test_greedy_picks_labels_uniformly_whatever_their_pool_sizes():
    pools = {1: list(range(5000)), 2: list(range(5000, 5900)), 3: list(range(6000, 7000))}
    batch = GreedyAcquisition().select(pools, set(), 2400, random.Random(3))
    counts = {lab: sum(1 for _, x in batch if x == lab) for lab in pools}
    assert all(700 < c < 900 for c in counts.values()), counts  # 800 each expected; not by pool size
    assert all([d for d, x in batch if x == lab] == pools[lab][: counts[lab]] for lab in pools)  # top-ranked first
