"""Serving a model bundle: document text -> ranked labels with scores."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.encoders import encode, load_bi_encoder
from core.errors import ModelError
from core.index import load_index
from core.versions import read_manifest


@dataclass(frozen=True)
class Prediction:
    """One ranked label for one document."""

    label_id: int
    score: float
    bi_score: float
    cross_score: float | None = None


class Ranker:
    """A loaded bundle: bi-encoder, label index and label table."""

    def __init__(self, bundle: Path, device: str = "auto") -> None:
        self.bundle = Path(bundle)
        self.manifest = read_manifest(self.bundle)
        enc = Path(self.manifest["bi_encoder"])
        self.bi_encoder = load_bi_encoder(enc if enc.is_absolute() else self.bundle / enc, device)
        self.index = load_index(self.bundle / "index")
        self.labels = {row["id"]: row for row in json.loads((self.bundle / "labels.json").read_text())}

    def rank(self, texts: list[str], k: int = 10) -> list[list[Prediction]]:
        """Top-``k`` labels per text, best first.

        Raises:
            ModelError: an empty text (there is nothing to rank labels against).
        """
        for i, t in enumerate(texts):
            if not t or not t.strip():
                raise ModelError(f"Document {i + 1} is empty: paste a title or abstract to rank labels for.")
        vectors = encode(self.bi_encoder, texts)
        ids, sims = self.index.search(vectors, k)
        return [[Prediction(int(i), float(s), float(s)) for i, s in zip(row_i, row_s, strict=True) if i >= 0]
                for row_i, row_s in zip(ids, sims, strict=True)]

    def embed_labels(self, texts: list[str]) -> np.ndarray:
        return encode(self.bi_encoder, texts)
