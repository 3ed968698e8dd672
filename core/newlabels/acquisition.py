"""Acquisition strategies: which (document, new label) questions to ask the oracle next."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Protocol

Question = tuple[int, int]  # (document id, label id)


class Acquisition(Protocol):
    """Choose up to ``n`` unasked questions from the labels' pools."""

    name: str

    def select(self, ranked_pools: Mapping[int, Sequence[int]], asked: set[Question], n: int,
               rng: random.Random) -> list[Question]:
        """Args:
            ranked_pools: per label, its pool's documents, best first (by the current model).
            asked: questions already asked (never asked again).
            n: batch size.
            rng: the random source (seeded for reproducible runs).
        """
        ...


class GreedyAcquisition:
    """The paper's Algorithm 2: ``n`` times, pick a label uniformly at random among those with
    unasked documents left, and take its top-ranked unasked document."""

    name = "greedy"

    def select(self, ranked_pools: Mapping[int, Sequence[int]], asked: set[Question], n: int,
               rng: random.Random) -> list[Question]:
        cursor = dict.fromkeys(ranked_pools, 0)
        taken: set[Question] = set()
        batch: list[Question] = []
        labels = sorted(ranked_pools)
        while len(batch) < n and labels:
            label = rng.choice(labels)
            pool = ranked_pools[label]
            i = cursor[label]
            while i < len(pool) and ((pool[i], label) in asked or (pool[i], label) in taken):
                i += 1
            cursor[label] = i + 1
            if i >= len(pool):
                labels.remove(label)  # this label's pool is exhausted
                continue
            taken.add((pool[i], label))
            batch.append((pool[i], label))
        return batch


class RandomAcquisition:
    """The control: unasked (document, label) questions drawn uniformly from all pools."""

    name = "random"

    def select(self, ranked_pools: Mapping[int, Sequence[int]], asked: set[Question], n: int,
               rng: random.Random) -> list[Question]:
        open_questions = sorted({(d, lab) for lab, pool in ranked_pools.items() for d in pool} - asked)
        return rng.sample(open_questions, min(n, len(open_questions)))


STRATEGIES: dict[str, type] = {"greedy": GreedyAcquisition, "random": RandomAcquisition}


def make_strategy(name: str) -> Acquisition:
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise ValueError(f"Unknown acquisition strategy {name!r}; use one of {sorted(STRATEGIES)}.") from None
