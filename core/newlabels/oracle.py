"""Oracles answer "does document d carry label c?": SMEs through the queue, or a simulation from gold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

Answer = Literal["yes", "no", "unsure"]
ANSWERS: tuple[Answer, ...] = ("yes", "no", "unsure")


class Oracle(Protocol):
    def answer(self, questions: Sequence[tuple[int, int]]) -> list[Answer]:
        """One answer per (document id, label id) question, in order."""
        ...


class SimulatedOracle:
    """Answers from held-out gold labels only: "yes" exactly when the document carries the label.

    Documents it knows nothing about get "unsure" (a simulation must not invent a "no").
    """

    def __init__(self, gold: Mapping[int, set[int]]) -> None:
        self.gold = gold
        self.asked = 0

    def answer(self, questions: Sequence[tuple[int, int]]) -> list[Answer]:
        self.asked += len(questions)
        return ["unsure" if d not in self.gold else ("yes" if lab in self.gold[d] else "no") for d, lab in questions]
