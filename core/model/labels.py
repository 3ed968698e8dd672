"""What every label ranker shares: the label table, the predictions it returns, the ranker protocol."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from core.errors import ModelError


@dataclass(frozen=True)
class Prediction:
    """One ranked label for one document, with the scores that placed it."""

    label_id: int
    score: float
    bi_score: float
    cross_score: float | None = None


class LabelRanker(Protocol):
    """What every served model offers: ranked labels for texts."""

    def rank(self, texts: list[str], k: int = 10) -> list[list[Prediction]]: ...


def shown(preds: list[Prediction], digits: int, threshold: float | None = None) -> list[tuple[Prediction, float]]:
    """Predictions with their score as a caller sees it (rounded to ``digits``), those below ``threshold`` left out.

    The threshold is compared with the shown score, not the raw one: a label whose shown score equals the threshold
    is kept, whatever the raw score's last bits were on this CPU.
    """
    out = [(p, round(float(p.score), digits)) for p in preds]
    return out if threshold is None else [(p, s) for p, s in out if s >= threshold]


def check_texts(texts: list[str]) -> None:
    for i, t in enumerate(texts):
        if not t or not t.strip():
            raise ModelError(f"Document {i + 1} is empty: give a title or abstract to rank labels for.")


@dataclass
class LabelTable:
    """The servable labels: row ids, the text the models read, training frequency (the prior), and the names a
    document may mention them by (default: the texts; a text enriched with more than the name keeps the name here)."""

    ids: np.ndarray
    texts: list[str]
    external_ids: list[str]
    freq: np.ndarray
    names: list[str] | None = None

    def __post_init__(self) -> None:
        self._row = {int(i): r for r, i in enumerate(self.ids)}
        if self.names is None:
            self.names = list(self.texts)

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, label_id: int) -> int:
        return self._row[int(label_id)]

    def text(self, label_id: int) -> str:
        return self.texts[self._row[int(label_id)]]

    def text_map(self) -> dict[int, str]:
        """Label id -> the text the models read."""
        return {int(i): t for i, t in zip(self.ids, self.texts, strict=True)}

    def prior(self) -> np.ndarray:
        """log(1 + frequency), scaled to 0..1: frequent "check tags" carry little text signal."""
        top = np.log1p(self.freq.max()) if len(self.freq) and self.freq.max() > 0 else 1.0
        return (np.log1p(self.freq) / top).astype(np.float32)

    def typical_frequency(self) -> float:
        """The median training frequency of the labels seen in training (0 when none was)."""
        seen = self.freq[self.freq > 0]
        return float(np.median(seen)) if len(seen) else 0.0

    def add(self, ids: list[int], texts: list[str], external_ids: list[str], freq: float = 0.0) -> None:
        """Add (or replace the text of) labels."""
        for i, t, e in zip(ids, texts, external_ids, strict=True):
            if int(i) in self._row:
                r = self._row[int(i)]
                self.texts[r], self.external_ids[r], self.names[r] = t, e, t
                continue
            self.ids = np.append(self.ids, np.int64(i))
            self.texts.append(t)
            self.names.append(t)
            self.external_ids.append(e)
            self.freq = np.append(self.freq, np.float32(freq))
            self._row[int(i)] = len(self.ids) - 1

    def save(self, folder: Path) -> None:
        rows = [{"id": int(i), "external_id": e, "text": t, "freq": float(f), **({"name": n} if n != t else {})}
                for i, e, t, f, n in zip(self.ids, self.external_ids, self.texts, self.freq, self.names, strict=True)]
        (folder / "labels.json").write_text(json.dumps(rows))

    @classmethod
    def load(cls, folder: Path) -> LabelTable:
        rows = json.loads((folder / "labels.json").read_text())
        return cls(np.array([r["id"] for r in rows], dtype=np.int64), [r["text"] for r in rows],
                   [r["external_id"] for r in rows], np.array([r.get("freq", 0.0) for r in rows], dtype=np.float32),
                   [r.get("name", r["text"]) for r in rows])


def resolve_path(bundle: Path, path: str) -> Path:
    """A path a bundle's manifest names: absolute, or relative to the bundle."""
    p = Path(path)
    return p if p.is_absolute() else bundle / p
