"""The supervised sparse backend: TF-IDF features and Omikuji label trees (Bonsai), as in Annif's omikuji backend.

It learns word -> label associations from the training documents, which the encoders learn slowly: labels
with many documents and little text signal of their own name (MeSH's check tags: Humans, Male, Adult...).
It only knows labels it was trained on; the dense and lexical sources serve the others. It refits in
seconds, so an active-learning iteration can refit it on the answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError


@dataclass
class SparseConfig:
    """TF-IDF and Omikuji settings (Annif's Bonsai defaults: unbalanced 100-way clusters, depth 3)."""

    ngram_max: int = 1
    min_df: int = 2
    max_features: int = 200_000
    cluster_k: int = 100
    max_depth: int = 3
    cluster_balanced: bool = False
    collapse_every_n_layers: int = 0
    n_trees: int = 3
    beam_size: int = 20
    seed: int = 0


class SparseBackend:
    """TF-IDF + Omikuji over the labels seen in training; scores in 0..1 (the trees' probabilities)."""

    def __init__(self, vectorizer: Any, model: Any, label_ids: np.ndarray, config: SparseConfig) -> None:
        self.vectorizer = vectorizer
        self.model = model
        self.label_ids = label_ids.astype(np.int64)  # omikuji's label index -> label id
        self.config = config

    @classmethod
    def fit(cls, texts: Sequence[str], gold: Sequence[set[int]], config: SparseConfig | None = None,
            n_threads: int | None = None) -> SparseBackend:
        """Train on documents and their gold label ids.

        Raises:
            ModelError: no document has a gold label, or no word occurs often enough to be a feature.
        """
        import omikuji
        from sklearn.feature_extraction.text import TfidfVectorizer

        config = config or SparseConfig()
        pairs = [(t, sorted(g)) for t, g in zip(texts, gold, strict=True) if g]
        if not pairs:
            raise ModelError("The sparse backend needs at least one document with a gold label.")
        label_ids = np.array(sorted({lab for _, g in pairs for lab in g}), dtype=np.int64)
        column = {int(lab): i for i, lab in enumerate(label_ids)}
        vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, config.ngram_max),
                                     min_df=min(config.min_df, len(pairs)), max_features=config.max_features,
                                     dtype=np.float32)
        try:
            x = vectorizer.fit_transform([t for t, _ in pairs])
        except ValueError as exc:  # an empty vocabulary
            raise ModelError(f"The sparse backend found no usable words in the training documents ({exc}).") from exc
        hp = omikuji.Model.default_hyper_param()
        hp.cluster_k, hp.max_depth, hp.cluster_balanced = config.cluster_k, config.max_depth, config.cluster_balanced
        hp.collapse_every_n_layers, hp.n_trees = config.collapse_every_n_layers, config.n_trees
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "train.txt"
            _write_xmc(path, x, [[column[lab] for lab in g] for _, g in pairs], len(label_ids))
            with _quiet_stderr():  # omikuji draws a progress bar per example on stderr
                model = omikuji.Model.train_on_data(str(path), hp, n_threads)
        return cls(vectorizer, model, label_ids, config)

    def predict(self, texts: Sequence[str], k: int = 50) -> list[dict[int, float]]:
        """The top-``k`` labels per text with their scores (label id -> score)."""
        x = self.vectorizer.transform(list(texts)).tocsr()
        out = []
        for r in range(x.shape[0]):
            row = x.getrow(r)
            feats = list(zip(row.indices.tolist(), row.data.tolist(), strict=True))
            hits = self.model.predict(feats, beam_size=max(self.config.beam_size, k // 2), top_k=k) if feats else []
            out.append({int(self.label_ids[i]): float(s) for i, s in hits})
        return out

    def knows(self) -> set[int]:
        return {int(i) for i in self.label_ids}

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with _quiet_stderr():
            self.model.save(str(folder / "omikuji"))
        with (folder / "tfidf.pkl").open("wb") as f:
            pickle.dump(self.vectorizer, f)
        np.save(folder / "label_ids.npy", self.label_ids)
        (folder / "config.json").write_text(json.dumps(asdict(self.config)))

    @classmethod
    def load(cls, folder: Path) -> SparseBackend:
        import omikuji

        try:
            with (folder / "tfidf.pkl").open("rb") as f:
                vectorizer = pickle.load(f)  # written by this tool into its own bundle
            with _quiet_stderr():
                model = omikuji.Model.load(str(folder / "omikuji"))
        except (OSError, pickle.UnpicklingError, ValueError) as exc:
            raise ModelError(f"The sparse backend in {folder} cannot be loaded: {exc}") from exc
        config = SparseConfig(**json.loads((folder / "config.json").read_text()))
        return cls(vectorizer, model, np.load(folder / "label_ids.npy"), config)


def _write_xmc(path: Path, x: Any, labels: list[list[int]], n_labels: int) -> None:
    """The Extreme Classification Repository's text format that Omikuji trains from."""
    x = x.tocsr()
    with path.open("w") as f:
        f.write(f"{x.shape[0]} {x.shape[1]} {n_labels}\n")
        for r in range(x.shape[0]):
            start, end = x.indptr[r], x.indptr[r + 1]
            feats = " ".join(f"{j}:{v:.6f}" for j, v in zip(x.indices[start:end], x.data[start:end], strict=True))
            f.write(",".join(map(str, labels[r])) + " " + feats + "\n")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptors 1 and 2 to /dev/null for a while (omikuji's native logger writes there directly)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
