"""A lexical source: labels whose name occurs verbatim (word-aligned, lightly normalized) in a document."""

from __future__ import annotations

import re
from collections.abc import Sequence

_WORD = re.compile(r"[a-z0-9]+")
MAX_WORDS = 6


def _norm(word: str) -> str:
    # Crude plural folding so "neoplasm"/"neoplasms" and "study"/"studies" meet.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    return [_norm(w) for w in _WORD.findall(text.lower())]


class LexicalMatcher:
    """Finds labels by name in text with an n-gram dictionary (names of up to ``MAX_WORDS`` words)."""

    def __init__(self, label_ids: Sequence[int], names: Sequence[str]) -> None:
        self._grams: dict[tuple[str, ...], list[int]] = {}
        for lid, name in zip(label_ids, names, strict=True):
            self.add(int(lid), name)

    def add(self, label_id: int, name: str) -> None:
        key = tuple(words(name))
        if 0 < len(key) <= MAX_WORDS:
            self._grams.setdefault(key, []).append(label_id)

    def match(self, text: str) -> set[int]:
        """Ids of labels whose name appears in ``text``."""
        toks = words(text)
        found: set[int] = set()
        for n in range(1, MAX_WORDS + 1):
            for i in range(len(toks) - n + 1):
                hit = self._grams.get(tuple(toks[i:i + n]))
                if hit:
                    found.update(hit)
        return found
