"""Label indexes: nearest labels to a document embedding (HNSW via hnswlib, and exact)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np

from core.errors import ModelError
from core.model.encoders import similarities


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class LabelIndex(Protocol):
    """Cosine-similarity search over label embeddings, keyed by integer label ids."""

    dim: int

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (or replace) labels."""

    def remove(self, ids: np.ndarray) -> None:
        """Take labels out of search results (no rebuild)."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` label ids and cosine similarities per query row, best first; -1 pads missing."""

    def __len__(self) -> int: ...

    def ids(self) -> np.ndarray: ...

    def save(self, folder: Path) -> None: ...


def _pad(ids: list[np.ndarray], sims: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    out_i = np.full((len(ids), k), -1, dtype=np.int64)
    out_s = np.full((len(ids), k), -np.inf, dtype=np.float32)
    for r, (i, s) in enumerate(zip(ids, sims, strict=True)):
        out_i[r, : len(i)] = i
        out_s[r, : len(s)] = s
    return out_i, out_s


class ExactIndex:
    """Brute-force cosine search: the reference for recall checks and small taxonomies."""

    kind = "exact"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._ids = np.empty(0, dtype=np.int64)
        self._vecs = np.empty((0, dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> np.ndarray:
        return self._ids.copy()

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vecs = _normalize(vectors)
        if vecs.shape != (len(ids), self.dim):
            raise ModelError(f"expected {len(ids)} vectors of dimension {self.dim}, got {vecs.shape}")
        keep = ~np.isin(self._ids, ids)
        self._ids = np.concatenate([self._ids[keep], ids])
        self._vecs = np.concatenate([self._vecs[keep], vecs])

    def remove(self, ids: np.ndarray) -> None:
        keep = ~np.isin(self._ids, np.asarray(ids, dtype=np.int64))
        self._ids, self._vecs = self._ids[keep], self._vecs[keep]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = _normalize(queries)
        if len(self._ids) == 0:
            return _pad([np.empty(0)] * len(q), [np.empty(0)] * len(q), k)
        sims = similarities(q, self._vecs)
        kk = min(k, sims.shape[1])
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        rows = np.arange(len(q))[:, None]
        order = np.argsort(-sims[rows, top], axis=1, kind="stable")
        top = top[rows, order]
        return _pad(list(self._ids[top]), list(sims[rows, top]), k)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "ids.npy", self._ids)
        np.save(folder / "vectors.npy", self._vecs)
        (folder / "index.json").write_text(json.dumps({"kind": self.kind, "dim": self.dim}))

    @classmethod
    def load(cls, folder: Path) -> ExactIndex:
        meta = json.loads((folder / "index.json").read_text())
        index = cls(meta["dim"])
        index._ids = np.load(folder / "ids.npy")
        index._vecs = np.load(folder / "vectors.npy")
        return index


class HnswIndex:
    """Approximate search with hnswlib (cosine space); labels are added and removed in place.

    Args:
        dim: embedding dimension.
        m: graph degree (hnswlib ``M``).
        ef_construction: build-time candidate list size.
        ef: query-time candidate list size (raised to ``k`` when smaller).
        seed: hnswlib's random seed, for reproducible graphs.
        capacity: initial element capacity; grows automatically.
    """

    kind = "hnsw"

    def __init__(self, dim: int, m: int = 32, ef_construction: int = 200, ef: int = 200, seed: int = 0,
                 capacity: int = 1024) -> None:
        import hnswlib

        self.dim, self.m, self.ef_construction, self.ef, self.seed = dim, m, ef_construction, ef, seed
        self._index = hnswlib.Index(space="cosine", dim=dim)
        self._index.init_index(max_elements=max(capacity, 16), ef_construction=ef_construction, M=m,
                               random_seed=seed, allow_replace_deleted=True)
        self._index.set_ef(ef)
        self._live: set[int] = set()

    def __len__(self) -> int:
        return len(self._live)

    def ids(self) -> np.ndarray:
        return np.array(sorted(self._live), dtype=np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vecs = _normalize(vectors)
        if vecs.shape != (len(ids), self.dim):
            raise ModelError(f"expected {len(ids)} vectors of dimension {self.dim}, got {vecs.shape}")
        if len(ids) == 0:
            return
        # Re-adding a label that was removed: un-delete it first so the update replaces its vector.
        stored = set(self._index.get_ids_list())
        for i in ids:
            if int(i) not in self._live and int(i) in stored:
                self._index.unmark_deleted(int(i))
        need = len(stored | {int(i) for i in ids})
        if need > self._index.get_max_elements():
            self._index.resize_index(max(need, 2 * self._index.get_max_elements()))
        self._index.add_items(vecs, ids, num_threads=1, replace_deleted=False)
        self._live.update(int(i) for i in ids)

    def remove(self, ids: np.ndarray) -> None:
        for i in np.asarray(ids, dtype=np.int64):
            if int(i) in self._live:
                self._index.mark_deleted(int(i))
                self._live.discard(int(i))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = _normalize(queries)
        kk = min(k, len(self._live))
        if kk == 0:
            return _pad([np.empty(0)] * len(q), [np.empty(0)] * len(q), k)
        self._index.set_ef(max(self.ef, kk))
        labels, dists = self._index.knn_query(q, k=kk, num_threads=1)
        return _pad(list(labels.astype(np.int64)), list((1.0 - dists).astype(np.float32)), k)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._index.save_index(str(folder / "hnsw.bin"))
        np.save(folder / "ids.npy", self.ids())
        (folder / "index.json").write_text(json.dumps({"kind": self.kind, "dim": self.dim, "m": self.m,
                                                       "ef_construction": self.ef_construction, "ef": self.ef,
                                                       "seed": self.seed}))

    @classmethod
    def load(cls, folder: Path) -> HnswIndex:
        import hnswlib

        meta = json.loads((folder / "index.json").read_text())
        index = cls(meta["dim"], meta["m"], meta["ef_construction"], meta["ef"], meta["seed"], capacity=16)
        index._index = hnswlib.Index(space="cosine", dim=meta["dim"])
        index._index.load_index(str(folder / "hnsw.bin"), allow_replace_deleted=True)
        index._index.set_ef(meta["ef"])
        index._live = {int(i) for i in np.load(folder / "ids.npy")}
        return index


def load_index(folder: Path) -> ExactIndex | HnswIndex:
    """Load whichever index kind was saved in ``folder``."""
    meta_path = folder / "index.json"
    if not meta_path.is_file():
        raise ModelError(f"No label index in {folder}.")
    kind = json.loads(meta_path.read_text()).get("kind")
    if kind == "hnsw":
        return HnswIndex.load(folder)
    if kind == "exact":
        return ExactIndex.load(folder)
    raise ModelError(f"Unknown label index kind {kind!r} in {folder}.")


def make_index(kind: str, dim: int, capacity: int = 1024) -> ExactIndex | HnswIndex:
    if kind == "hnsw":
        return HnswIndex(dim, capacity=capacity)
    if kind == "exact":
        return ExactIndex(dim)
    raise ModelError(f"Unknown label index kind {kind!r}; use 'hnsw' or 'exact'.")
