"""Fitting BiCross and the baseline from plain documents and labels (shared by the job and the bench)."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.baseline import BaselineRanker
from core.encoders import load_bi_encoder
from core.errors import ModelError
from core.metrics import evaluate
from core.ranker import BiCrossRanker, Fusion, LabelRanker, LabelTable
from core.taxonomy import LabelRow, label_text
from core.training import (
    CrossScorer,
    Progress,
    TrainConfig,
    cross_examples,
    no_progress,
    train_bi_encoder,
    train_cross_encoder,
)

PRIOR_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
LEXICAL_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
BI_WEIGHT_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
TUNE_METRIC = "nDCG@10"


def make_label_table(labels: Sequence[LabelRow], doc_gold: Sequence[set[int]], alts: int = 0,
                     parents: int = 0) -> LabelTable:
    """Label texts (preferred name, optionally with ``alts`` alternative names and ``parents`` parent
    names) and training frequencies.

    Raises:
        ModelError: a label has no text to embed.
    """
    empty = [lab.external_id for lab in labels if not (lab.pref_label or "").strip()]
    if empty:
        raise ModelError(f"{len(empty)} label(s) have no name to embed, e.g. {empty[:3]}; give them a preferred label.")
    freq = Counter(lab for gold in doc_gold for lab in gold)
    names = {lab.id: lab.pref_label for lab in labels}
    return LabelTable(np.array([lab.id for lab in labels], dtype=np.int64),
                      [label_text(lab.pref_label, lab.alt_labels, alts,
                                  [names.get(p, "") for p in lab.parent_ids[:parents]]) for lab in labels],
                      [lab.external_id for lab in labels],
                      np.array([freq.get(lab.id, 0) for lab in labels], dtype=np.float32))


def validation_split(n: int, share: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices for training and for tuning the score fusion (a seeded random share held out)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_val = round(n * share) if n >= 20 else 0
    return sorted(order[n_val:]), sorted(order[:n_val])


def stage(progress: Progress, start: float, end: float) -> Progress:
    """A progress callback mapping 0..1 of a sub-step onto ``start..end`` of the whole."""
    return lambda f, msg: progress(start + (end - start) * f, msg)


def score_rankings(rankings: Sequence[Sequence[Any]], gold: Sequence[set[int]],
                   names: Sequence[str] = ("P@1", "P@5", "R@10", "nDCG@10")) -> dict[str, float]:
    return evaluate([[p.label_id for p in r] for r in rankings], gold, names)


@dataclass
class FitResult:
    """A fitted ranker and what its training measured."""

    ranker: Any
    stats: dict[str, Any] = field(default_factory=dict)


def tune_fusion(ranker: BiCrossRanker, texts: list[str], gold: list[set[int]], progress: Progress = no_progress,
                lexical: bool = True) -> dict:
    """Choose the prior and lexical weights (bi-encoder stage) and the bi/cross blend on validation documents."""
    if not texts:
        return {}
    vecs = ranker.embed_documents(texts)
    hits = ranker.lexical_hits(texts)
    best_w, best = (0.0, 0.0), -1.0
    for w in PRIOR_GRID:
        for lw in LEXICAL_GRID if lexical else (0.0,):
            ids, _ = ranker.candidates(vecs, prior_weight=w, lexical=hits, lexical_weight=lw)
            m = evaluate([list(r[r >= 0]) for r in ids], gold, (TUNE_METRIC,))[TUNE_METRIC]
            if m > best + 1e-9:
                best_w, best = (w, lw), m
    ranker.fusion.prior_weight, ranker.fusion.lexical_weight = best_w
    out: dict[str, Any] = {"prior_weight": best_w[0], "lexical_weight": best_w[1], f"val_bi_{TUNE_METRIC}": best}
    if ranker.cross is not None:
        progress(0.3, "scoring validation candidates with the cross-encoder")
        ids, scores = ranker.candidates(vecs, lexical=hits)
        cross = ranker.cross_scores(texts, ids)
        best_b, best = 0.0, -1.0
        for w in BI_WEIGHT_GRID:
            m = score_rankings(ranker.rerank(texts, ids, scores, bi_weight=w, cross_scores=cross), gold,
                               (TUNE_METRIC,))[TUNE_METRIC]
            if m > best + 1e-9:
                best_b, best = w, m
        ranker.fusion.bi_weight = best_b
        out.update(bi_weight=best_b, **{f"val_bicross_{TUNE_METRIC}": best})
    return out


def fit_bicross(encoder_path: str, device: str, labels: Sequence[LabelRow], texts: Sequence[str],
                gold: Sequence[set[int]], cfg: TrainConfig, progress: Progress = no_progress,
                cross_init: str | None = None, base: BiCrossRanker | None = None) -> FitResult:
    """Train the bi-encoder and the cross-encoder (as ``cfg`` asks) and tune the score fusion.

    Args:
        encoder_path: checkpoint the bi-encoder starts from.
        cross_init: checkpoint the cross-encoder starts from (default: ``encoder_path``).
        base: a served ranker whose cross-encoder is kept when ``cfg.train_cross`` is off.
    """
    if not any(gold):
        raise ModelError("There is nothing to train on: no training document has a gold label.")
    tr, val = validation_split(len(texts), cfg.validation_share, cfg.seed)
    tr_texts, tr_gold = [texts[i] for i in tr], [gold[i] for i in tr]
    val_texts, val_gold = [texts[i] for i in val], [gold[i] for i in val]
    table = make_label_table(labels, tr_gold, cfg.label_alts, cfg.label_parents)
    known = set(int(i) for i in table.ids)
    tr_gold = [{g for g in s if g in known} for s in tr_gold]
    stats: dict[str, Any] = {"train_docs": len(tr), "validation_docs": len(val), "labels": len(table)}
    started = time.monotonic()
    bi = load_bi_encoder(encoder_path, device, cfg.max_seq_length)
    if cfg.train_bi:
        label_texts = {int(i): t for i, t in zip(table.ids, table.texts, strict=True)}
        stats["bi"] = train_bi_encoder(bi, tr_texts, tr_gold, label_texts, cfg, stage(progress, 0.0, 0.45))
    progress(0.46, "embedding labels and building the HNSW index")
    ranker = BiCrossRanker.build(bi, table, fusion=Fusion())
    stats.update(tune_fusion(ranker, val_texts, val_gold))
    if cfg.train_cross:
        progress(0.5, "mining cross-encoder negatives from the bi-encoder's top labels")
        rng = random.Random(cfg.seed)
        cand, _ = ranker.candidates(ranker.embed_documents(tr_texts), n=cfg.cross_top_k)
        examples = cross_examples(tr_gold, [list(r) for r in cand], cfg, rng)
        cross = CrossScorer(cross_init or encoder_path, str(bi.device), cfg.cross_max_length)
        label_texts = {int(i): t for i, t in zip(table.ids, table.texts, strict=True)}
        stats["cross"] = train_cross_encoder(cross, examples, tr_texts, label_texts, cfg, stage(progress, 0.5, 0.9))
        ranker.cross = cross
    elif base is not None and base.cross is not None:
        ranker.cross = base.cross
    if ranker.cross is not None:
        stats.update(tune_fusion(ranker, val_texts, val_gold, stage(progress, 0.9, 0.98)))
    stats["train_seconds"] = time.monotonic() - started
    return FitResult(ranker, stats)


def fit_baseline(encoder_path: str, device: str, labels: Sequence[LabelRow], texts: Sequence[str],
                 gold: Sequence[set[int]], cfg: TrainConfig, progress: Progress = no_progress) -> FitResult:
    """Train the classification-head baseline on all training documents."""
    table = make_label_table(labels, gold, cfg.label_alts, cfg.label_parents)
    encoder = load_bi_encoder(encoder_path, device, cfg.max_seq_length)
    ranker = BaselineRanker(encoder, table)
    stats = ranker.train(list(texts), [set(g) for g in gold], cfg, progress)
    return FitResult(ranker, {"baseline": stats})


def evaluate_ranker(ranker: LabelRanker, texts: list[str], gold: list[set[int]], k: int = 30,
                    batch: int = 32, progress: Progress = no_progress) -> dict[str, float]:
    """P@1, P@5, R@10, nDCG@10 (and R@30 of the ranked list) over documents."""
    rankings = []
    for s in range(0, len(texts), batch):
        rankings += ranker.rank(texts[s:s + batch], k=k)
        progress(min(1.0, (s + batch) / len(texts)), f"evaluated {min(len(texts), s + batch)} of {len(texts)}")
    return score_rankings(rankings, gold, ("P@1", "P@5", "R@10", "nDCG@10", "R@30"))
