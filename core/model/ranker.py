"""Serving label rankers from bundles: BiCross (bi-encoder + HNSW + cross-encoder) and the baseline head."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from core.model.cross import load_cross_scorer
from core.model.encoders import encode, load_bi_encoder, similarities
from core.model.fusion import CROSS_FEATURES, FEATURES, Candidates, Fusion, sigmoid
from core.model.index import HnswIndex, load_index
from core.model.labels import LabelTable, Prediction, check_texts, resolve_path
from core.model.lexical import LexicalMatcher
from core.model.sparse import SparseBackend


class NeighbourMemory:
    """Training documents' vectors and gold labels: a label scores by how many of a document's nearest
    training documents carry it (similarity-weighted), a supervised signal that refits by adding rows."""

    def __init__(self, vectors: np.ndarray, labels: list[list[int]]) -> None:
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.labels = [list(map(int, g)) for g in labels]

    def __len__(self) -> int:
        return len(self.labels)

    CHUNK = 256  # documents scored at once: memory holds CHUNK x training documents similarities, not more

    def scores(self, doc_vectors: np.ndarray, k: int, limit: int = 50) -> list[dict[int, float]]:
        """Per document, the ``limit`` best labels of its ``k`` nearest training documents, in 0..1."""
        if not len(self.labels) or k <= 0:
            return [{} for _ in range(len(doc_vectors))]
        k = min(k, len(self.labels))
        out: list[dict[int, float]] = []
        for start in range(0, len(doc_vectors), self.CHUNK):
            out += self._votes(doc_vectors[start:start + self.CHUNK], k, limit)
        return out

    def _votes(self, doc_vectors: np.ndarray, k: int, limit: int) -> list[dict[int, float]]:
        sims = similarities(doc_vectors, self.vectors)
        near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out = []
        for r, row in enumerate(near):
            weights = np.clip(sims[r, row], 0.0, None)
            total = float(weights.sum()) or 1.0
            votes: dict[int, float] = {}
            for n, w in zip(row, weights, strict=True):
                for lab in self.labels[n]:
                    votes[lab] = votes.get(lab, 0.0) + float(w) / total
            out.append(dict(sorted(votes.items(), key=lambda kv: -kv[1])[:limit]))
        return out

    def relabel(self, label_ids: set[int], vectors: np.ndarray, labels: list[set[int]], same: float = 0.9999) -> None:
        """Make ``label_ids`` carried by exactly the given documents (a campaign's confirmed answers).

        ``label_ids`` are taken off every row, then each document's ``labels`` are added to its row (the row
        whose vector it repeats, cosine >= ``same``) or, for a document the memory does not hold, a new row.
        Idempotent: the same answers give the same memory.
        """
        self.labels = [[lab for lab in row if lab not in label_ids] for row in self.labels]
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, self.vectors.shape[1])
        if not len(vectors):
            return
        # The row each document repeats, a block of documents at a time (never documents x memory at once).
        nearest = np.full(len(vectors), -1, dtype=np.int64)
        if len(self.labels):
            for start in range(0, len(vectors), 256):
                sims = similarities(vectors[start:start + 256], self.vectors)
                best = np.argmax(sims, axis=1)
                nearest[start:start + 256] = np.where(sims[np.arange(len(best)), best] >= same, best, -1)
        added = []
        for r, labs in enumerate(labels):
            row = int(nearest[r])
            if row >= 0:
                self.labels[row] = sorted(set(self.labels[row]) | set(labs))
            else:
                added.append(r)
                self.labels.append(sorted(labs))
        if added:
            self.vectors = np.vstack([self.vectors, vectors[added]])

    def save(self, folder: Path) -> None:
        np.save(folder / "memory_vectors.npy", self.vectors)
        (folder / "memory_labels.json").write_text(json.dumps(self.labels))

    @classmethod
    def load(cls, folder: Path) -> NeighbourMemory | None:
        if not (folder / "memory_vectors.npy").is_file():
            return None
        return cls(np.load(folder / "memory_vectors.npy"), json.loads((folder / "memory_labels.json").read_text()))


class BiCrossRanker:
    """Candidates from every source (HNSW, prior, names, sparse backend, neighbours), ranked by the fusion's
    first stage; its top ``candidates`` re-ranked with the cross-encoder."""

    kind = "bicross"

    def __init__(self, bi_encoder: Any, table: LabelTable, vectors: np.ndarray, index: Any,
                 cross: Any = None, fusion: Fusion | None = None, sparse: SparseBackend | None = None,
                 memory: NeighbourMemory | None = None) -> None:
        self.bi_encoder = bi_encoder
        self.table = table
        self.vectors = vectors.astype(np.float32)
        self.index = index
        self.cross = cross
        self.fusion = fusion or Fusion()
        self.sparse = sparse
        self.memory = memory
        self.timings: dict[str, float] = {"bi": 0.0, "cross": 0.0}
        self.bi_path = ""  # where the bi-encoder was loaded from (set by load)
        self.cross_path = ""  # where the cross-encoder was loaded from (set by load)
        self._removed: set[int] = set()  # labels taken out of predictions (kept in the table for history)
        self._refresh_prior()

    def _refresh_prior(self) -> None:
        """Derive the name matcher, the prior and the always-considered frequent labels from the table."""
        self._lexical = LexicalMatcher(self.table.ids, self.table.names)
        self._refresh_frequent()

    def _refresh_frequent(self) -> None:
        """The prior and the most frequent live labels (after a frequency or removal change)."""
        self._prior = self.table.prior()
        self._seen = (self.table.freq > 0).astype(np.float32)
        by_freq = self.table.ids[np.argsort(-self.table.freq, kind="stable")]
        live = np.array([i for i in by_freq if int(i) not in self._removed], dtype=np.int64)
        self._frequent = live[: self.fusion.prior_candidates]

    @classmethod
    def build(cls, bi_encoder: Any, table: LabelTable, cross: Any = None,
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

    def candidate_sets(self, texts: list[str], doc_vectors: np.ndarray | None = None,
                       among: np.ndarray | None = None) -> list[Candidates]:
        """Every source's candidate labels per text, with their feature rows (see :data:`core.model.fusion.FEATURES`);
        ``among``: labels that are candidates of every text too (scored by every source, sparse heads included)."""
        f = self.fusion
        vecs = self.embed_documents(texts) if doc_vectors is None else doc_vectors
        near, _ = self.index.search(vecs, f.retrieve)
        hits = self.lexical_hits(texts)
        forced = np.zeros(0, dtype=np.int64) if among is None else np.asarray(among, dtype=np.int64)
        sparse = (self.sparse.predict(texts, f.sparse_candidates, always=forced)
                  if self.sparse is not None and f.sparse_candidates else [{} for _ in texts])
        neighbours = (self.memory.scores(vecs, f.neighbours) if self.memory is not None and f.neighbours
                      else [{} for _ in texts])
        out = []
        for r in range(len(texts)):
            extra = [*hits[r], *sparse[r], *neighbours[r]]
            cand = np.unique(np.concatenate([near[r][near[r] >= 0], self._frequent,
                                             np.array(extra, dtype=np.int64), forced]))
            if self._removed:
                cand = cand[~np.isin(cand, np.fromiter(self._removed, dtype=np.int64))]
            cand = cand[[int(c) in self.table._row for c in cand]] if len(cand) else cand
            rows = np.array([self.table.row(c) for c in cand], dtype=np.int64)
            cos = similarities(vecs[r:r + 1], self.vectors[rows])[0] if len(rows) else np.zeros(0, dtype=np.float32)
            feats = np.column_stack([
                cos, cos - (cos.max() if len(cos) else 0.0), self._prior[rows], self._seen[rows],
                np.isin(cand, np.fromiter(hits[r], dtype=np.int64, count=len(hits[r]))).astype(np.float32),
                np.array([sparse[r].get(int(c), 0.0) for c in cand], dtype=np.float32),
                np.array([neighbours[r].get(int(c), 0.0) for c in cand], dtype=np.float32),
            ]).astype(np.float32)
            out.append(Candidates(cand.astype(np.int64), feats.reshape(len(cand), len(FEATURES))))
        return out

    def scores_among(self, texts: list[str], label_ids: Sequence[int],
                     doc_vectors: np.ndarray | None = None) -> np.ndarray:
        """(texts, labels) first-stage scores of exactly ``label_ids`` (-inf for a label taken out of predictions):
        how the served model ranks these labels among themselves."""
        ids = np.asarray(label_ids, dtype=np.int64)
        out = np.full((len(texts), len(ids)), -np.inf, dtype=np.float32)
        for r, c in enumerate(self.candidate_sets(texts, doc_vectors, among=ids)):
            first = self.fusion.first_stage(c)
            at = {int(i): j for j, i in enumerate(c.ids)}
            out[r] = [first[at[int(i)]] if int(i) in at else -np.inf for i in ids]
        return out

    CHUNK = 512  # documents whose candidate features are held at once (a corpus is worked through in chunks)

    def candidates(self, texts: list[str], n: int | None = None, doc_vectors: np.ndarray | None = None,
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` labels per text by the fusion's first stage (ids padded with -1, and their scores); any number
        of texts, a chunk at a time."""
        n = n or self.fusion.candidates
        out_ids = np.full((len(texts), n), -1, dtype=np.int64)
        out_scores = np.full((len(texts), n), -np.inf, dtype=np.float32)
        for start in range(0, len(texts), self.CHUNK):
            vecs = None if doc_vectors is None else doc_vectors[start:start + self.CHUNK]
            for r, (c, first) in enumerate(self.shortlist(texts[start:start + self.CHUNK], vecs, n), start=start):
                out_ids[r, : len(c.ids)] = c.ids
                out_scores[r, : len(first)] = first
        return out_ids, out_scores

    def shortlist(self, texts: list[str], doc_vectors: np.ndarray | None = None,
                  n: int | None = None) -> list[tuple[Candidates, np.ndarray]]:
        """Each text's top-``n`` candidates by the first stage, with their first-stage scores."""
        n = n or self.fusion.candidates
        return [c.top(self.fusion.first_stage(c), n) for c in self.candidate_sets(texts, doc_vectors)]

    def cross_logits(self, texts: list[str], shortlists: list[Candidates]) -> list[np.ndarray]:
        """The cross-encoder's logits for each text's shortlisted labels."""
        assert self.cross is not None
        started = time.perf_counter()
        labels, docs = [], []
        for t, c in zip(texts, shortlists, strict=True):
            labels += [self.table.text(i) for i in c.ids]
            docs += [t] * len(c.ids)
        flat = self.cross.logits_np(labels, docs) if labels else np.zeros(0, dtype=np.float32)
        self.timings["cross"] += time.perf_counter() - started
        out, s = [], 0
        for c in shortlists:
            out.append(flat[s:s + len(c.ids)])
            s += len(c.ids)
        return out

    def order(self, shortlist: Candidates, first: np.ndarray, cross: np.ndarray | None) -> list[Prediction]:
        """Predictions for one document's shortlist, best first."""
        if cross is None:
            final = first
            preds = [Prediction(int(i), float(f), float(f)) for i, f in zip(shortlist.ids, first, strict=True)]
        else:
            final = self.fusion.final(shortlist, first, cross)
            preds = [Prediction(int(i), float(s), float(f), float(p)) for i, s, f, p in
                     zip(shortlist.ids, final, first, sigmoid(cross), strict=True)]
        order = np.argsort(-np.asarray(final), kind="stable")
        return [preds[i] for i in order]

    def rank(self, texts: list[str], k: int = 10, rerank: bool = True,
             doc_vectors: np.ndarray | None = None, every: bool = False) -> list[list[Prediction]]:
        """Top-``k`` labels per text: the first stage's shortlist, re-ranked with the cross-encoder when present and
        where the bundle's rule says it pays (``Fusion.rerank``; ``every``: each document, whatever the rule says;
        ``rerank`` false: the first stage alone). ``doc_vectors``: the texts' bi-encoder vectors, when computed."""
        check_texts(texts)
        started = time.perf_counter()
        lists = self.shortlist(texts, doc_vectors, n=max(k, self.fusion.candidates))
        self.timings["bi"] += time.perf_counter() - started
        chosen = [i for i, (_, first) in enumerate(lists) if every or self.fusion.unsure(first)] \
            if rerank and self.cross is not None else []
        out = [self.order(c, first, None)[:k] for c, first in lists]
        if not chosen:
            return out
        # Only the first stage's top candidates are worth the cross-encoder; the rest keep their order below them.
        n = self.fusion.candidates
        heads = [Candidates(lists[i][0].ids[:n], lists[i][0].features[:n]) for i in chosen]
        logits = self.cross_logits([texts[i] for i in chosen], heads)
        for i, head, lg in zip(chosen, heads, logits, strict=True):
            c, first = lists[i]
            reranked = self.guard(self.order(head, first[:n], lg), head.ids, self.fusion.protected)
            out[i] = self.below(reranked, c.ids[n:k], first[n - 1:k])[:k]
        return out

    @staticmethod
    def guard(reranked: list[Prediction], first_ids: np.ndarray, protected: frozenset[int]) -> list[Prediction]:
        """``reranked`` with each ``protected`` label lifted back to its first-stage place (``first_ids``, best first)
        where the re-ranker put it lower; it scores midway between its new neighbours, so scores still fall down
        the list."""
        if not protected:
            return reranked
        place = {int(i): r for r, i in enumerate(first_ids)}
        out = list(reranked)
        for lab in sorted((p.label_id for p in reranked if p.label_id in protected), key=place.__getitem__):
            at = next(r for r, p in enumerate(out) if p.label_id == lab)
            want = place[lab]
            if at <= want:
                continue
            moved = out.pop(at)
            below_score = out[want].score
            score = (out[want - 1].score + below_score) / 2 if want else below_score + max(1e-3, abs(below_score) * 1e-3)
            out.insert(want, replace(moved, score=score))
        return out

    @staticmethod
    def below(head: list[Prediction], tail_ids: np.ndarray, first: np.ndarray) -> list[Prediction]:
        """The re-ranked head, then the labels the cross-encoder did not read, on the head's scale: each tail label
        scores the head's last score minus how far its first-stage score fell below the head's last first-stage
        score (``first``: that score, then the tail's), so scores never rise down the list and a threshold cuts
        one ranking, not two."""
        if not len(tail_ids):
            return head
        floor = min(p.score for p in head) if head else float(first[0])
        return head + [Prediction(int(i), floor - float(first[0] - f), float(f))
                       for i, f in zip(tail_ids, first[1:], strict=True)]

    def explain(self, text: str, k: int = 10) -> list[dict[str, Any]]:
        """The top-``k`` labels for one text with every feature, and each source's contribution to the score
        (the learned fusion's SHAP values; the blend's weighted terms without one)."""
        check_texts([text])
        [(c, first)] = self.shortlist([text])
        # As rank() serves it: the re-ranker only where the rule says it pays, protected labels kept in place.
        logits = self.cross_logits([text], [c])[0] if self.cross is not None and self.fusion.unsure(first) else None
        preds = self.order(c, first, logits)
        preds = (preds if logits is None else self.guard(preds, c.ids, self.fusion.protected))[:k]
        row = {int(i): r for r, i in enumerate(c.ids)}
        x = np.column_stack([c.features, first, logits]) if logits is not None else c.features
        contrib = self.fusion.contributions(c, first, logits)
        out = []
        for p in preds:
            r = row[p.label_id]
            entry: dict[str, Any] = {"label_id": p.label_id, "score": p.score,
                                     **{f: float(v) for f, v in zip(CROSS_FEATURES, x[r], strict=False)}}
            entry["contributions"] = {name: float(v) for name, v in contrib[r].items()}
            out.append(entry)
        return out

    def typical_frequency(self) -> float:
        return self.table.typical_frequency()

    def new_label_frequency(self) -> float:
        """The training frequency a new label starts with. The learned fusion was fitted on labels without
        training documents and ranks them by their text (0: "no training document"); the blend has no such
        notion, so it gives a new label a typical label's frequency (the median), as it is not known to be rare."""
        return 0.0 if self.fusion.learned else self.typical_frequency()

    def add_labels(self, ids: list[int], texts: list[str], external_ids: list[str], freq: float | None = None) -> None:
        """Serve new labels at once: embed their text and add them to the index (no retraining).

        ``freq`` is their training frequency (default :meth:`new_label_frequency`).
        """
        self.table.add(ids, texts, external_ids, self.new_label_frequency() if freq is None else freq)
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

    def set_label_vectors(self, ids: list[int], vectors: np.ndarray) -> None:
        """Replace labels' vectors (e.g. a new label's prototype from its confirmed documents) in place."""
        vectors = np.asarray(vectors, dtype=np.float32)
        self.vectors[[self.table.row(i) for i in ids]] = vectors
        live = [r for r, i in enumerate(ids) if int(i) not in self._removed]
        if live:
            self.index.add(np.array([ids[r] for r in live], dtype=np.int64), vectors[live])

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
        manifest: dict[str, Any] = {"fusion": self.fusion.save(folder), "labels": len(self.table),
                                    "dim": int(self.vectors.shape[1])}
        if self.sparse is not None:
            self.sparse.save(folder / "sparse")
            manifest["sparse"] = "sparse"
        if self.memory is not None:
            self.memory.save(folder)
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
    def load(cls, bundle: Path, manifest: dict[str, Any], device: str = "auto", trainable: bool = False) -> BiCrossRanker:
        """Load a bundle; ``trainable`` keeps the cross-encoder in PyTorch (ONNX Runtime serves only)."""
        bi_path = resolve_path(bundle, manifest["bi_encoder"])
        bi = load_bi_encoder(bi_path, device)
        cross, cross_path = None, ""
        if manifest.get("cross_encoder"):
            cross_path = str(resolve_path(bundle, manifest["cross_encoder"]))
            cross = load_cross_scorer(cross_path, str(bi.device), manifest.get("cross_max_length", 128),
                                      runtime="torch" if trainable else None)
        fusion = Fusion.load(bundle, manifest.get("fusion", {}))
        sparse = SparseBackend.load(bundle / manifest["sparse"]) if manifest.get("sparse") else None
        ranker = cls(bi, LabelTable.load(bundle), np.load(bundle / "label_vectors.npy"), load_index(bundle / "index"),
                     cross, fusion, sparse, NeighbourMemory.load(bundle))
        ranker.bi_path, ranker.cross_path = str(bi_path), cross_path
        # Labels in the table but not in the index were taken out of predictions: keep them out of the
        # frequent and name-matched candidates too.
        ranker._removed = {int(i) for i in ranker.table.ids} - {int(i) for i in ranker.index.ids()}
        ranker._refresh_frequent()
        return ranker
