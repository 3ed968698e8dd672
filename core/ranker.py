"""Serving label rankers from bundles: BiCross (bi-encoder + HNSW + cross-encoder) and the baseline head."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.encoders import encode, load_bi_encoder
from core.errors import ModelError
from core.index import HnswIndex, load_index
from core.lexical import LexicalMatcher
from core.training import CrossScorer
from core.versions import read_manifest


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


def check_texts(texts: list[str]) -> None:
    for i, t in enumerate(texts):
        if not t or not t.strip():
            raise ModelError(f"Document {i + 1} is empty: give a title or abstract to rank labels for.")


@dataclass
class LabelTable:
    """The servable labels: row ids, the text the models read, and training frequency (the prior)."""

    ids: np.ndarray
    texts: list[str]
    external_ids: list[str]
    freq: np.ndarray

    def __post_init__(self) -> None:
        self._row = {int(i): r for r, i in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, label_id: int) -> int:
        return self._row[int(label_id)]

    def text(self, label_id: int) -> str:
        return self.texts[self._row[int(label_id)]]

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
                self.texts[r], self.external_ids[r] = t, e
                continue
            self.ids = np.append(self.ids, np.int64(i))
            self.texts.append(t)
            self.external_ids.append(e)
            self.freq = np.append(self.freq, np.float32(freq))
            self._row[int(i)] = len(self.ids) - 1

    def save(self, folder: Path) -> None:
        rows = [{"id": int(i), "external_id": e, "text": t, "freq": float(f)}
                for i, e, t, f in zip(self.ids, self.external_ids, self.texts, self.freq, strict=True)]
        (folder / "labels.json").write_text(json.dumps(rows))

    @classmethod
    def load(cls, folder: Path) -> LabelTable:
        rows = json.loads((folder / "labels.json").read_text())
        return cls(np.array([r["id"] for r in rows], dtype=np.int64), [r["text"] for r in rows],
                   [r["external_id"] for r in rows], np.array([r.get("freq", 0.0) for r in rows], dtype=np.float32))


@dataclass
class Fusion:
    """How the scores combine (weights tuned on validation documents at training time).

    bi_score = (1 - prior_weight) * cosine + prior_weight * prior + lexical_weight * [name occurs in text]
    score    = (1 - bi_weight) * cross + bi_weight * bi_score     (bi_score alone without a cross-encoder)
    """

    prior_weight: float = 0.0
    bi_weight: float = 0.0
    lexical_weight: float = 0.0
    candidates: int = 30
    retrieve: int = 100
    prior_candidates: int = 20


class BiCrossRanker:
    """Bi-encoder top-``candidates`` labels (HNSW, with the label prior) re-ranked by the cross-encoder."""

    kind = "bicross"

    def __init__(self, bi_encoder: Any, table: LabelTable, vectors: np.ndarray, index: Any,
                 cross: CrossScorer | None = None, fusion: Fusion | None = None) -> None:
        self.bi_encoder = bi_encoder
        self.table = table
        self.vectors = vectors.astype(np.float32)
        self.index = index
        self.cross = cross
        self.fusion = fusion or Fusion()
        self.timings: dict[str, float] = {"bi": 0.0, "cross": 0.0}
        self.bi_path = ""  # where the bi-encoder was loaded from (set by load)
        self.cross_path = ""  # where the cross-encoder was loaded from (set by load)
        self._removed: set[int] = set()  # labels taken out of predictions (kept in the table for history)
        self._refresh_prior()

    def _refresh_prior(self) -> None:
        """Derive the name matcher, the prior and the always-considered frequent labels from the table."""
        self._lexical = LexicalMatcher(self.table.ids, self.table.texts)
        self._refresh_frequent()

    def _refresh_frequent(self) -> None:
        """The prior and the most frequent live labels (after a frequency or removal change)."""
        self._prior = self.table.prior()
        by_freq = self.table.ids[np.argsort(-self.table.freq, kind="stable")]
        live = np.array([i for i in by_freq if int(i) not in self._removed], dtype=np.int64)
        self._frequent = live[: self.fusion.prior_candidates]

    @classmethod
    def build(cls, bi_encoder: Any, table: LabelTable, cross: CrossScorer | None = None,
              fusion: Fusion | None = None, progress: Any = None) -> BiCrossRanker:
        """Embed the label table with ``bi_encoder`` and index it (HNSW)."""
        vectors = encode(bi_encoder, table.texts, batch_size=128, progress=progress)
        index = HnswIndex(vectors.shape[1], capacity=max(len(table), 16))
        index.add(table.ids, vectors)
        return cls(bi_encoder, table, vectors, index, cross, fusion)

    def embed_documents(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return encode(self.bi_encoder, texts, batch_size=batch_size)

    def lexical_hits(self, texts: list[str]) -> list[set[int]]:
        """Labels named verbatim in each text (removed labels excluded)."""
        return [self._lexical.match(t) - self._removed for t in texts]

    def candidates(self, doc_vectors: np.ndarray, n: int | None = None, prior_weight: float | None = None,
                   lexical: list[set[int]] | None = None, lexical_weight: float | None = None,
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` labels per document by the bi-encoder score (cosine blended with the prior).

        The index returns the ``retrieve`` nearest labels; the most frequent labels are always
        considered too, since their names alone rarely sit near a document, and so are labels
        named in the text (``lexical``, from :meth:`lexical_hits`).
        """
        n = n or self.fusion.candidates
        w = self.fusion.prior_weight if prior_weight is None else prior_weight
        lw = self.fusion.lexical_weight if lexical_weight is None else lexical_weight
        near, _ = self.index.search(doc_vectors, max(self.fusion.retrieve, n))
        out_ids = np.full((len(doc_vectors), n), -1, dtype=np.int64)
        out_scores = np.full((len(doc_vectors), n), -np.inf, dtype=np.float32)
        for r, row in enumerate(near):
            hits = lexical[r] if (lexical is not None and lw > 0) else set()
            extra = np.fromiter(hits, dtype=np.int64, count=len(hits))
            cand = np.unique(np.concatenate([row[row >= 0], self._frequent, extra]))
            rows = np.array([self.table.row(c) for c in cand], dtype=np.int64)
            score = (1 - w) * (self.vectors[rows] @ doc_vectors[r]) + w * self._prior[rows]
            if hits:
                score = score + lw * np.isin(cand, extra).astype(np.float32)
            top = np.argsort(-score, kind="stable")[:n]
            out_ids[r, : len(top)] = cand[top]
            out_scores[r, : len(top)] = score[top]
        return out_ids, out_scores

    def rerank(self, texts: list[str], cand_ids: np.ndarray, bi_scores: np.ndarray, bi_weight: float | None = None,
               cross_scores: np.ndarray | None = None) -> list[list[Prediction]]:
        """Order each document's candidates by the fused score (cross-encoder scores computed unless given)."""
        w = self.fusion.bi_weight if bi_weight is None else bi_weight
        if self.cross is not None and cross_scores is None:
            cross_scores = self.cross_scores(texts, cand_ids)
        out = []
        for r in range(len(texts)):
            valid = cand_ids[r] >= 0
            ids, bis = cand_ids[r][valid], bi_scores[r][valid]
            if cross_scores is None:
                preds = [Prediction(int(i), float(b), float(b)) for i, b in zip(ids, bis, strict=True)]
            else:
                cs = cross_scores[r][valid]
                preds = [Prediction(int(i), float((1 - w) * c + w * b), float(b), float(c))
                         for i, b, c in zip(ids, bis, cs, strict=True)]
            out.append(sorted(preds, key=lambda p: -p.score))
        return out

    def cross_scores(self, texts: list[str], cand_ids: np.ndarray) -> np.ndarray:
        assert self.cross is not None
        started = time.perf_counter()
        labels, docs = [], []
        for r, t in enumerate(texts):
            for c in cand_ids[r]:
                labels.append(self.table.text(c) if c >= 0 else "")
                docs.append(t)
        flat = self.cross.score(labels, docs)
        self.timings["cross"] += time.perf_counter() - started
        return flat.reshape(cand_ids.shape)

    def rank(self, texts: list[str], k: int = 10, rerank: bool = True) -> list[list[Prediction]]:
        """Top-``k`` labels per text: bi-encoder candidates, re-ranked by the cross-encoder when present."""
        check_texts(texts)
        started = time.perf_counter()
        vecs = self.embed_documents(texts)
        lexical = self.lexical_hits(texts) if self.fusion.lexical_weight > 0 else None
        ids, scores = self.candidates(vecs, lexical=lexical)
        self.timings["bi"] += time.perf_counter() - started
        if not rerank or self.cross is None:
            return [[Prediction(int(i), float(s), float(s)) for i, s in zip(ri, rs, strict=True) if i >= 0][:k]
                    for ri, rs in zip(ids, scores, strict=True)]
        return [p[:k] for p in self.rerank(texts, ids, scores)]

    def typical_frequency(self) -> float:
        return self.table.typical_frequency()

    def add_labels(self, ids: list[int], texts: list[str], external_ids: list[str], freq: float | None = None) -> None:
        """Serve new labels at once: embed their text and add them to the index (no retraining).

        ``freq`` is their prior's training frequency; by default a typical label's (median), since a
        label nobody has used in training yet is not known to be rare.
        """
        self.table.add(ids, texts, external_ids, self.typical_frequency() if freq is None else freq)
        vecs = encode(self.bi_encoder, texts)
        rows = [self.table.row(i) for i in ids]
        grown = np.zeros((len(self.table), self.vectors.shape[1]), dtype=np.float32)
        grown[: len(self.vectors)] = self.vectors
        grown[rows] = vecs
        self.vectors = grown
        self.index.add(np.array(ids, dtype=np.int64), vecs)
        self._removed -= {int(i) for i in ids}
        self._refresh_prior()

    def set_frequency(self, freq: dict[int, float]) -> None:
        """Set labels' training frequency (their prior)."""
        for lid, f in freq.items():
            self.table.freq[self.table.row(lid)] = np.float32(f)
        self._refresh_frequent()

    def reindex(self, progress: Any = None) -> None:
        """Re-embed every label with the current bi-encoder and rebuild the index (after training)."""
        self.vectors = encode(self.bi_encoder, self.table.texts, batch_size=128, progress=progress)
        index = HnswIndex(self.vectors.shape[1], capacity=max(len(self.table), 16))
        keep = np.array([int(i) not in self._removed for i in self.table.ids], dtype=bool)
        index.add(self.table.ids[keep], self.vectors[keep])
        self.index = index

    def remove_labels(self, ids: list[int]) -> None:
        """Take labels out of predictions (they stay in the table for history)."""
        self.index.remove(np.array(ids, dtype=np.int64))
        self._removed |= {int(i) for i in ids}
        self._refresh_frequent()

    def save(self, folder: Path, copy_encoders: bool = True) -> dict[str, Any]:
        """Write the bundle's files into ``folder`` and return the manifest fields."""
        self.index.save(folder / "index")
        np.save(folder / "label_vectors.npy", self.vectors)
        self.table.save(folder)
        manifest: dict[str, Any] = {"fusion": asdict(self.fusion), "labels": len(self.table),
                                    "dim": int(self.vectors.shape[1])}
        # Without copies, the manifest points at the (immutable) bundle the encoders were loaded from.
        if copy_encoders:
            self.bi_encoder.save(str(folder / "bi_encoder"))
            manifest["bi_encoder"] = "bi_encoder"
        elif self.bi_path:
            manifest["bi_encoder"] = self.bi_path
        if self.cross is not None:
            if copy_encoders or not self.cross_path:
                self.cross.save(str(folder / "cross_encoder"))
                manifest["cross_encoder"] = "cross_encoder"
            else:
                manifest["cross_encoder"] = self.cross_path
            manifest["cross_max_length"] = self.cross.max_length
        return manifest

    @classmethod
    def load(cls, bundle: Path, manifest: dict[str, Any], device: str = "auto") -> BiCrossRanker:
        bi_path = _resolve(bundle, manifest["bi_encoder"])
        bi = load_bi_encoder(bi_path, device)
        cross, cross_path = None, ""
        if manifest.get("cross_encoder"):
            cross_path = str(_resolve(bundle, manifest["cross_encoder"]))
            cross = CrossScorer(cross_path, str(bi.device), manifest.get("cross_max_length", 128))
        fusion = Fusion(**manifest.get("fusion", {}))
        ranker = cls(bi, LabelTable.load(bundle), np.load(bundle / "label_vectors.npy"), load_index(bundle / "index"),
                     cross, fusion)
        ranker.bi_path, ranker.cross_path = str(bi_path), cross_path
        # Labels in the table but not in the index were taken out of predictions: keep them out of the
        # frequent and name-matched candidates too.
        ranker._removed = {int(i) for i in ranker.table.ids} - {int(i) for i in ranker.index.ids()}
        ranker._refresh_frequent()
        return ranker


def _resolve(bundle: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else bundle / p


def load_ranker(bundle: str | Path, device: str = "auto") -> LabelRanker:
    """Load whichever ranker a bundle holds.

    Raises:
        ModelError: a missing, incomplete or incompatible bundle.
    """
    from core.baseline import BaselineRanker

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    kind = manifest.get("kind")
    if kind in ("zero_shot", "bicross"):
        return BiCrossRanker.load(bundle, manifest, device)
    if kind == "baseline":
        return BaselineRanker.load(bundle, manifest, device)
    raise ModelError(f"The bundle {bundle} holds an unknown model kind {kind!r}.")
