"""The supervised sparse backend: TF-IDF features and Omikuji label trees (Bonsai), as in Annif's omikuji backend.

It learns word -> label associations from the training documents, which the encoders learn slowly: labels
with many documents and little text signal of their own name (MeSH's check tags: Humans, Male, Adult...).
It only knows labels it was trained on; the dense and lexical sources serve the others. A campaign's new labels
get a head each (:class:`LabelHeads`: a logistic regression over the same TF-IDF features, fitted on the SMEs'
answers in a second), so an active-learning iteration never refits the trees, which takes minutes at a library's
scale.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import sys
import tempfile
from collections.abc import Collection, Iterator, Sequence
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


@dataclass
class LabelHeads:
    """One linear head per label over the backend's TF-IDF features: ``sigmoid(x . weights[:, j] + bias[j])``."""

    label_ids: np.ndarray  # (heads,)
    weights: Any  # scipy.sparse CSC (features, heads): only the features seen in a head's examples are non-zero
    bias: np.ndarray  # (heads,)

    def scores(self, x: Any) -> np.ndarray:
        """(documents, heads) probabilities of TF-IDF rows ``x``."""
        logits = (x @ self.weights).toarray()
        return (1.0 / (1.0 + np.exp(-(logits + self.bias)))).astype(np.float32)

    def without(self, label_ids: set[int]) -> LabelHeads | None:
        """These heads less those of ``label_ids`` (None when none is left)."""
        keep = np.array([int(i) not in label_ids for i in self.label_ids], dtype=bool)
        if not keep.any():
            return None
        return LabelHeads(self.label_ids[keep], self.weights[:, np.flatnonzero(keep)], self.bias[keep])

    @staticmethod
    def stack(parts: list[LabelHeads]) -> LabelHeads:
        from scipy.sparse import hstack

        return LabelHeads(np.concatenate([p.label_ids for p in parts]), hstack([p.weights for p in parts]).tocsc(),
                          np.concatenate([p.bias for p in parts]).astype(np.float32))


class SparseBackend:
    """TF-IDF + Omikuji over the labels seen in training; scores in 0..1 (the trees' probabilities), and the heads
    of labels learned since (a campaign's), whose probabilities join the trees' hits."""

    def __init__(self, vectorizer: Any, model: Any, label_ids: np.ndarray, config: SparseConfig,
                 heads: LabelHeads | None = None) -> None:
        self.vectorizer = vectorizer
        self.model = model
        self.label_ids = label_ids.astype(np.int64)  # omikuji's label index -> label id
        self.config = config
        self.heads = heads

    def fit_heads(self, texts: Sequence[str], examples: dict[int, tuple[Sequence[int], Sequence[int]]],
                  c: float = 1.0, positive_weight: float = 1.0) -> dict[str, Any]:
        """Fit (or refit) one head per label from its positive and negative documents (rows of ``texts``, each
        turned into features once); other labels' heads stay. A label without both a positive and a negative gets
        no head (and loses an earlier one). ``c``: the inverse L2 regularisation; ``positive_weight``: a positive's
        weight against a negative's (a few "yes" against thousands of negatives; 0: balanced, the classes weigh the
        same in all)."""
        from scipy.sparse import csc_matrix
        from sklearn.linear_model import LogisticRegression

        kept = self.heads.without(set(examples)) if self.heads is not None else None
        x = self.vectorizer.transform(list(texts)).tocsr() if texts else None
        ids, columns, bias = [], [], []
        for lid, (pos, neg) in sorted(examples.items()):
            if not len(pos) or not len(neg):
                continue
            y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
            weights = {1: positive_weight, 0: 1.0} if positive_weight > 0 else "balanced"
            fitted = LogisticRegression(C=c, solver="liblinear", class_weight=weights).fit(x[[*pos, *neg]], y)
            ids.append(lid)
            columns.append(fitted.coef_[0].astype(np.float32))
            bias.append(float(fitted.intercept_[0]))
        parts = [kept] if kept is not None else []
        if ids:
            w = np.stack(columns, axis=1)
            w[np.abs(w) < 1e-6] = 0.0
            parts.append(LabelHeads(np.array(ids, dtype=np.int64), csc_matrix(w), np.array(bias, dtype=np.float32)))
        self.heads = LabelHeads.stack(parts) if len(parts) > 1 else (parts[0] if parts else None)
        return {"heads": len(ids), "examples": sum(len(p) + len(n) for p, n in examples.values())}

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

    def predict(self, texts: Sequence[str], k: int = 50, always: Collection[int] = ()) -> list[dict[int, float]]:
        """The top-``k`` labels per text with their scores (label id -> score); the heads of ``always`` are scored
        for every text, in its top k or not."""
        x = self.vectorizer.transform(list(texts)).tocsr()
        heads = self.heads.scores(x) if self.heads is not None else None
        out = []
        for r in range(x.shape[0]):
            row = x.getrow(r)
            feats = list(zip(row.indices.tolist(), row.data.tolist(), strict=True))
            hits = self.model.predict(feats, beam_size=max(self.config.beam_size, k // 2), top_k=k) if feats else []
            found = {int(self.label_ids[i]): float(s) for i, s in hits}
            if heads is not None:  # a head's label joins the trees' hits where it scores among the top k
                scored = dict(zip(self.heads.label_ids.tolist(), heads[r].tolist(), strict=True))
                found = dict(sorted({**found, **scored}.items(), key=lambda kv: -kv[1])[:k])
                found.update({int(lab): scored[int(lab)] for lab in always if int(lab) in scored})
            out.append(found)
        return out

    def knows(self) -> set[int]:
        return {int(i) for i in self.label_ids} | ({int(i) for i in self.heads.label_ids} if self.heads else set())

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with _quiet_stderr():
            self.model.save(str(folder / "omikuji"))
        with (folder / "tfidf.pkl").open("wb") as f:
            pickle.dump(self.vectorizer, f)
        np.save(folder / "label_ids.npy", self.label_ids)
        (folder / "config.json").write_text(json.dumps(asdict(self.config)))
        if self.heads is not None:
            from scipy.sparse import save_npz

            save_npz(folder / "head_weights.npz", self.heads.weights)
            np.save(folder / "head_ids.npy", self.heads.label_ids)
            np.save(folder / "head_bias.npy", self.heads.bias)

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
        heads = None
        if (folder / "head_ids.npy").is_file():
            from scipy.sparse import load_npz

            heads = LabelHeads(np.load(folder / "head_ids.npy"), load_npz(folder / "head_weights.npz").tocsc(),
                               np.load(folder / "head_bias.npy"))
        return cls(vectorizer, model, np.load(folder / "label_ids.npy"), config, heads)


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
