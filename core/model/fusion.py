"""Combining the ranking model's signals: a ranker learned on a validation slice of TRAIN, or a weighted blend.

Every candidate label of a document carries the same features, whatever source proposed it (HNSW, the
label prior, a name match, the sparse backend, the neighbouring training documents). A LightGBM
LambdaMART ranker learns how to combine them from documents the encoders were not trained on; scores rise
monotonically with each relevance signal, so a label is never pushed down for being *more* similar. The
weighted blend is kept for models without a validation slice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Candidate features, in column order. "seen" is whether the label has any training document: with it the
# learned ranker can treat a label it knows nothing about by its text alone instead of burying it.
FEATURES = ("cosine", "cosine_gap", "prior", "seen", "lexical", "sparse", "neighbours")
CROSS_FEATURES = (*FEATURES, "first_stage", "cross")
def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logits -> probabilities in 0..1 (the cross-encoder's relevance)."""
    return (1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))).astype(np.float32)


MARGIN_RANKS = (5, 10)  # the cascade reads how far apart the first stage puts the labels at these ranks


def margin(first: np.ndarray) -> float:
    """How sure the first stage is of a document's top ranks: its score at rank ``MARGIN_RANKS[0]`` minus the one at
    ``MARGIN_RANKS[1]`` (``first``: the scores, best first; in a shorter list its last score and the one above)."""
    if len(first) < 2:
        return float("inf")
    b = min(MARGIN_RANKS[1], len(first)) - 1
    return float(first[min(MARGIN_RANKS[0] - 1, b - 1)] - first[b])


# +1: the score may only rise with the feature (relevance signals); 0: free.
MONOTONE = {"cosine": 1, "cosine_gap": 1, "prior": 0, "seen": 0, "lexical": 1, "sparse": 1, "neighbours": 1,
            "first_stage": 1, "cross": 1}


@dataclass
class Candidates:
    """One document's candidate labels and their feature rows (columns: :data:`FEATURES`)."""

    ids: np.ndarray
    features: np.ndarray

    def column(self, name: str) -> np.ndarray:
        return self.features[:, FEATURES.index(name)]

    def top(self, scores: np.ndarray, n: int | None = None) -> tuple[Candidates, np.ndarray]:
        """The ``n`` best candidates by ``scores`` (all, sorted, without ``n``) and their scores, best first."""
        order = np.argsort(-scores, kind="stable")[:n]
        return Candidates(self.ids[order], self.features[order]), scores[order]


@dataclass
class Blend:
    """The weighted blend (fallback without a validation slice; tuned by grid search when there is one).

    first stage = (1 - prior) * cosine + prior * prior_feature + lexical * [named] + sparse * sparse_score
    final       = (1 - bi) * sigmoid(cross logit) + bi * first stage   (first stage alone without a cross-encoder)
    """

    prior_weight: float = 0.0
    lexical_weight: float = 0.0
    sparse_weight: float = 0.0
    bi_weight: float = 0.0

    def first_stage(self, c: Candidates) -> np.ndarray:
        return ((1 - self.prior_weight) * c.column("cosine") + self.prior_weight * c.column("prior")
                + self.lexical_weight * c.column("lexical") + self.sparse_weight * c.column("sparse"))

    def final(self, first: np.ndarray, cross_logits: np.ndarray) -> np.ndarray:
        return (1 - self.bi_weight) * sigmoid(cross_logits) + self.bi_weight * first


@dataclass
class LearnedRanker:
    """A LightGBM LambdaMART model over named feature columns."""

    features: tuple[str, ...]
    model_text: str
    _booster: Any = field(default=None, repr=False)

    def score(self, x: np.ndarray) -> np.ndarray:
        if self._booster is None:
            import lightgbm

            self._booster = lightgbm.Booster(model_str=self.model_text)
        return np.asarray(self._booster.predict(x, num_threads=1), dtype=np.float32)

    @classmethod
    def fit(cls, groups: Sequence[np.ndarray], targets: Sequence[np.ndarray], features: tuple[str, ...],
            seed: int = 0, rounds: int = 300) -> LearnedRanker:
        """LambdaMART on per-document groups of feature rows with 0/1 relevance targets."""
        import lightgbm

        x = np.vstack(groups).astype(np.float32)
        y = np.concatenate(targets).astype(np.float32)
        params = {"objective": "lambdarank", "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 20,
                  "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
                  "lambdarank_truncation_level": 30, "eval_at": [10], "verbose": -1, "seed": seed,
                  "deterministic": True, "num_threads": 1,
                  "monotone_constraints": [MONOTONE.get(f, 0) for f in features],
                  "monotone_constraints_method": "advanced"}
        data = lightgbm.Dataset(x, y, group=[len(g) for g in groups], feature_name=list(features))
        booster = lightgbm.train(params, data, num_boost_round=rounds)
        return cls(features, booster.model_to_string(), booster)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per row, each feature's SHAP contribution to the score (columns: features, then the bias)."""
        self.score(x[:1])
        return np.asarray(self._booster.predict(x, pred_contrib=True, num_threads=1), dtype=np.float32)

    def importance(self) -> dict[str, float]:
        """Share of the total gain each feature brought in training."""
        if self._booster is None:
            self.score(np.zeros((1, len(self.features)), dtype=np.float32))
        gain = self._booster.feature_importance("gain")
        total = float(gain.sum()) or 1.0
        return {f: float(g) / total for f, g in zip(self.features, gain, strict=True)}


@dataclass
class Fusion:
    """How a ranker turns candidate features into scores: learned rankers when fitted, else the blend.

    ``candidates`` labels (by the first stage) go to the cross-encoder; the index returns ``retrieve``
    nearest labels, the ``prior_candidates`` most frequent and the sparse backend's ``sparse_candidates``
    best join them.
    """

    blend: Blend = field(default_factory=Blend)
    first: LearnedRanker | None = None
    second: LearnedRanker | None = None
    candidates: int = 30
    retrieve: int = 100
    prior_candidates: int = 20
    sparse_candidates: int = 50
    neighbours: int = 20
    # Which documents the re-ranker reads (decided on validation, :func:`core.model.bicross.fit_rerank_rule`):
    # "all", "cascade" (where the first stage is unsure: its scores at ranks MARGIN_RANKS differ by less than
    # ``rerank_margin``) or "off" (it added nothing: the first stage serves alone).
    rerank: str = "all"
    rerank_margin: float = float("inf")
    rerank_gain: float | None = None  # the validation nDCG@10 the rule adds over the first stage (out of fold)
    rerank_share: float | None = None  # the share of validation documents the rule re-ranks
    # Labels the re-ranker never places lower than the first stage did: a campaign's labels, which the second stage
    # (fitted before they existed) has never seen win (issue 14's bench: BiCross .337 vs first stage .372 R@10).
    protected: frozenset[int] = frozenset()

    def first_stage(self, c: Candidates) -> np.ndarray:
        if self.first is not None:
            return self.first.score(c.features)
        return self.blend.first_stage(c)

    def final(self, c: Candidates, first: np.ndarray, cross: np.ndarray) -> np.ndarray:
        """Final scores of the shortlist from its features, first-stage scores and cross-encoder logits."""
        if self.second is not None:
            return self.second.score(np.column_stack([c.features, first, cross]))
        return self.blend.final(first, cross)

    def contributions(self, c: Candidates, first: np.ndarray, cross: np.ndarray | None) -> list[dict[str, float]]:
        """What each source added to each candidate's final score."""
        if self.second is not None and cross is not None:
            values = self.second.contributions(np.column_stack([c.features, first, cross]))
            return [dict(zip((*self.second.features, "bias"), row.tolist(), strict=True)) for row in values]
        if self.first is not None:
            values = self.first.contributions(c.features)
            return [dict(zip((*self.first.features, "bias"), row.tolist(), strict=True)) for row in values]
        b = self.blend
        keep = 1.0 if cross is None else b.bi_weight
        rows = []
        for r in range(len(c.ids)):
            row = {"cosine": keep * (1 - b.prior_weight) * float(c.column("cosine")[r]),
                   "prior": keep * b.prior_weight * float(c.column("prior")[r]),
                   "lexical": keep * b.lexical_weight * float(c.column("lexical")[r]),
                   "sparse": keep * b.sparse_weight * float(c.column("sparse")[r])}
            if cross is not None:
                row["cross"] = (1 - b.bi_weight) * float(sigmoid(cross[r]))
            rows.append(row)
        return rows

    def unsure(self, first: np.ndarray) -> bool:
        """Whether the rule re-ranks a document with these first-stage scores (best first)."""
        if self.rerank == "off":
            return False
        return self.rerank == "all" or margin(first) < self.rerank_margin

    @property
    def learned(self) -> bool:
        return self.first is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"blend": asdict(self.blend), "candidates": self.candidates, "retrieve": self.retrieve,
                               "prior_candidates": self.prior_candidates,
                               "sparse_candidates": self.sparse_candidates, "neighbours": self.neighbours}
        out["learned"] = [s is not None for s in (self.first, self.second)]
        out["rerank"] = {"rule": self.rerank, "margin": None if np.isinf(self.rerank_margin) else self.rerank_margin,
                         "gain": self.rerank_gain, "share": self.rerank_share}
        if self.protected:
            out["protected"] = sorted(self.protected)
        return out

    def save(self, folder: Path) -> dict[str, Any]:
        """Write learned models next to the manifest; returns the manifest entry."""
        for name, model in (("first", self.first), ("second", self.second)):
            if model is not None:
                (folder / f"fusion_{name}.txt").write_text(model.model_text)
                (folder / f"fusion_{name}.json").write_text(json.dumps(list(model.features)))
        return self.to_json()

    @classmethod
    def load(cls, folder: Path, entry: dict[str, Any]) -> Fusion:
        if "blend" not in entry:  # bundles written before the learned fusion: prior/lexical/bi weights only
            blend = Blend(entry.get("prior_weight", 0.0), entry.get("lexical_weight", 0.0), 0.0,
                          entry.get("bi_weight", 0.0))
            return cls(blend, candidates=entry.get("candidates", 30), retrieve=entry.get("retrieve", 100),
                       prior_candidates=entry.get("prior_candidates", 20), sparse_candidates=0, neighbours=0)
        models = {}
        for name in ("first", "second"):
            path = folder / f"fusion_{name}.txt"
            models[name] = (LearnedRanker(tuple(json.loads((folder / f"fusion_{name}.json").read_text())),
                                          path.read_text()) if path.is_file() else None)
        rule = entry.get("rerank") or {}  # bundles written before the rule re-rank every document
        margin_ = rule.get("margin")
        return cls(Blend(**entry["blend"]), models["first"], models["second"], entry["candidates"], entry["retrieve"],
                   entry["prior_candidates"], entry["sparse_candidates"], entry["neighbours"],
                   rule.get("rule", "all"), float("inf") if margin_ is None else float(margin_), rule.get("gain"),
                   rule.get("share"), frozenset(int(i) for i in entry.get("protected", ())))
