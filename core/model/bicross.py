"""Fitting BiCross and the baseline from plain documents and labels (shared by the job and the bench)."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.data.concepts import LabelRow, label_text
from core.errors import ModelError
from core.model.baseline import BaselineRanker
from core.model.cross import CrossScorer
from core.model.encoders import encode, load_bi_encoder, similarities
from core.model.fusion import CROSS_FEATURES, FEATURES, Candidates, Fusion, LearnedRanker, margin
from core.model.labels import LabelRanker, LabelTable
from core.model.metrics import evaluate
from core.model.ranker import BiCrossRanker, NeighbourMemory
from core.model.sparse import SparseBackend, SparseConfig
from core.model.training import (
    Progress,
    TrainConfig,
    cross_examples,
    cross_groups,
    no_progress,
    train_bi_encoder,
    train_cross_encoder,
)

PRIOR_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
LEXICAL_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
SPARSE_GRID = (0.0, 0.1, 0.2, 0.4, 0.8)
BI_WEIGHT_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
TUNE_METRIC = "nDCG@10"
MIN_LEARNED_DOCS = 50  # fewer validation documents than this: the blend, not a learned fusion


def make_label_table(labels: Sequence[LabelRow], doc_gold: Sequence[set[int]], alts: int = 0,
                     parents: int = 0, terms: Mapping[int, Sequence[str]] | None = None) -> LabelTable:
    """Label texts (preferred name, optionally with ``alts`` alternative names, ``parents`` parent names and the
    ``terms`` that characterise a label's training documents: ``name: term, term, ...``) and training frequencies.

    Raises:
        ModelError: a label has no text to embed.
    """
    empty = [lab.external_id for lab in labels if not (lab.pref_label or "").strip()]
    if empty:
        raise ModelError(f"{len(empty)} label(s) have no name to embed, e.g. {empty[:3]}; give them a preferred label.")
    freq = Counter(lab for gold in doc_gold for lab in gold)
    names = {lab.id: lab.pref_label for lab in labels}
    terms = terms or {}
    texts = [label_text(lab.pref_label, lab.alt_labels, alts, [names.get(p, "") for p in lab.parent_ids[:parents]])
             for lab in labels]
    return LabelTable(np.array([lab.id for lab in labels], dtype=np.int64),
                      [f"{t}: {', '.join(terms[lab.id])}" if terms.get(lab.id) else t for t, lab in zip(texts, labels, strict=True)],
                      [lab.external_id for lab in labels],
                      np.array([freq.get(lab.id, 0) for lab in labels], dtype=np.float32),
                      [lab.pref_label for lab in labels])


def characteristic_terms(texts: Sequence[str], gold: Sequence[set[int]], n: int) -> dict[int, list[str]]:
    """Each label's ``n`` most characteristic words: the largest weights of the TF-IDF sum of its training documents
    (English stop words and words in over a fifth of the documents left out). Text for the encoders that needs no
    name: a subject known only by a German name is described by the English words of its records."""
    from scipy import sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer

    labelled = [(t, g) for t, g in zip(texts, gold, strict=True) if g]
    if n <= 0 or len(labelled) < 2:
        return {}
    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2, max_df=max(0.2, 3 / len(labelled)), stop_words="english",
                                 dtype=np.float32)
    try:
        x = vectorizer.fit_transform([t for t, _ in labelled])
    except ValueError:  # no word in two documents
        return {}
    ids = sorted({lab for _, g in labelled for lab in g})
    row = {lab: r for r, lab in enumerate(ids)}
    pairs = [(row[lab], d) for d, (_, g) in enumerate(labelled) for lab in g]
    owner = sp.csr_matrix((np.ones(len(pairs), dtype=np.float32), tuple(zip(*pairs, strict=True))),
                          shape=(len(ids), len(labelled)))
    weights = (owner @ x).tocsr()
    vocab = vectorizer.get_feature_names_out()
    out = {}
    for r, lab in enumerate(ids):
        start, end = weights.indptr[r], weights.indptr[r + 1]
        top = weights.indices[start:end][np.argsort(-weights.data[start:end], kind="stable")[:n]]
        if len(top):
            out[int(lab)] = [str(vocab[j]) for j in top]
    return out


LABEL_TEXT_LABELS = 8000  # the labels a label-text comparison ranks among (every validation gold label, then a sample)
LABEL_TEXT_DOCS = 1000  # the validation documents it reads at most


def choose_label_terms(encoder: Any, labels: Sequence[LabelRow], tr_gold: Sequence[set[int]],
                       terms: Mapping[int, Sequence[str]], cfg: TrainConfig, validation: Validation,
                       max_labels: int = LABEL_TEXT_LABELS) -> tuple[Mapping[int, Sequence[str]] | None, dict[str, Any]]:
    """Keep ``terms`` in the label text only where the encoder, as it starts, ranks the validation documents' labels
    better with them (nDCG@10 of at most ``LABEL_TEXT_DOCS`` documents among every label their gold holds and a seeded
    sample of the rest, at most ``max_labels``): on TIBKAT they lift held-out records' NDCG from .307 to .373, on
    PubMed/MeSH they lower it from .310 to .294 (a name there is already a precise description). Costs two embeddings
    of those labels."""
    rng = random.Random(cfg.seed)
    rows = sorted(rng.sample(range(len(validation.texts)), min(len(validation.texts), LABEL_TEXT_DOCS)))
    texts, gold = [validation.texts[i] for i in rows], [validation.gold[i] for i in rows]
    gold_ids = {g for s in gold for g in s}
    if not terms or not gold_ids:
        return terms or None, {}
    rest = [lab for lab in labels if lab.id not in gold_ids]
    wanted = gold_ids | {lab.id for lab in rng.sample(rest, max(0, min(len(rest), max_labels - len(gold_ids))))}
    chosen = [lab for lab in labels if lab.id in wanted]
    docs = encode(encoder, texts)
    scores = {}
    for name, with_terms in (("name", None), ("name_terms", terms)):
        table = make_label_table(chosen, tr_gold, cfg.label_alts, cfg.label_parents, with_terms)
        sims = similarities(docs, encode(encoder, table.texts))
        top = np.argsort(-sims, axis=1, kind="stable")[:, :10]
        scores[name] = evaluate([[int(table.ids[j]) for j in row] for row in top], gold, (TUNE_METRIC,))[TUNE_METRIC]
    keep = scores["name_terms"] > scores["name"]
    return (terms if keep else None), {"label_text_chosen": "name_terms" if keep else "name",
                                       "label_text_val": {k: round(v, 4) for k, v in scores.items()},
                                       "label_text_labels": len(chosen)}


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


def _rankings(sets: Sequence[Candidates], scores: Sequence[np.ndarray]) -> list[list[int]]:
    return [[int(i) for i in c.ids[np.argsort(-sc, kind="stable")]] for c, sc in zip(sets, scores, strict=True)]


def tune_blend(ranker: BiCrossRanker, sets: Sequence[Candidates], gold: Sequence[set[int]]) -> dict[str, Any]:
    """Grid-search the blend's first-stage weights on validation candidates."""
    blend, best = ranker.fusion.blend, (-1.0, (0.0, 0.0, 0.0))
    for w in PRIOR_GRID:
        for lw in LEXICAL_GRID:
            for sw in SPARSE_GRID if ranker.sparse is not None else (0.0,):
                blend.prior_weight, blend.lexical_weight, blend.sparse_weight = w, lw, sw
                m = evaluate(_rankings(sets, [blend.first_stage(c) for c in sets]), gold, (TUNE_METRIC,))[TUNE_METRIC]
                if m > best[0] + 1e-9:
                    best = (m, (w, lw, sw))
    blend.prior_weight, blend.lexical_weight, blend.sparse_weight = best[1]
    return {"prior_weight": best[1][0], "lexical_weight": best[1][1], "sparse_weight": best[1][2],
            f"val_first_{TUNE_METRIC}": best[0]}


def _targets(sets: Sequence[Candidates], gold: Sequence[set[int]]) -> list[np.ndarray]:
    return [np.isin(c.ids, np.fromiter(g, dtype=np.int64, count=len(g))).astype(np.float32)
            for c, g in zip(sets, gold, strict=True)]


FOLDS = 5  # cross-fitting: the second stage learns from first-stage scores of models that did not see the document


@dataclass
class Validation:
    """Validation documents with their candidates and out-of-fold first-stage scores (for the second stage)."""

    texts: list[str]
    gold: list[set[int]]
    sets: list[Candidates] = field(default_factory=list)
    first: list[np.ndarray] = field(default_factory=list)


def cross_fit(rows: Sequence[np.ndarray], targets: Sequence[np.ndarray], keep: Sequence[int], features: tuple[str, ...],
              seed: int, scores: list[np.ndarray], folds: int = FOLDS) -> list[int]:
    """Cross-fitting: each document of the first ``folds`` of ``FOLDS`` folds is scored into ``scores`` by a learned
    ranker fitted on the other folds' ``keep`` documents (feature ``rows``, 0/1 ``targets``). Returns the documents
    scored, in order."""
    scored: list[int] = []
    for fold in range(folds):
        held = set(range(fold, len(rows), FOLDS))
        model = LearnedRanker.fit([rows[i] for i in keep if i not in held], [targets[i] for i in keep if i not in held],
                                  features, seed)
        for i in sorted(held):
            scores[i] = model.score(rows[i])
            scored.append(i)
    return scored


def fit_first_stage(ranker: BiCrossRanker, val: Validation, mode: str = "learned", seed: int = 0,
                    out_of_fold: bool = True) -> dict[str, Any]:
    """Fit how candidates are ranked before the cross-encoder, on validation documents.

    ``learned``: LambdaMART over every candidate's features (with enough documents), else the grid-tuned
    blend. Fills ``val.sets`` and ``val.first``: each document's first-stage scores from a model fitted
    without it (``FOLDS``-fold cross-fitting), so the second stage sees scores as good as on new documents;
    without ``out_of_fold`` (no second stage to fit), one fold scored out of fold for an honest validation figure
    and the fitted model's own scores for the others.
    """
    if not val.texts:
        return {"fusion": "blend (no validation documents)"}
    val.sets = ranker.candidate_sets(val.texts)
    keep = [i for i, g in enumerate(val.gold) if g]
    out = tune_blend(ranker, val.sets, val.gold)  # the fallback is always tuned
    out["val_candidate_recall"] = evaluate([list(c.ids) for c in val.sets], val.gold, ("R@100000",))["R@100000"]
    if mode == "learned" and len(keep) >= MIN_LEARNED_DOCS:
        targets = _targets(val.sets, val.gold)
        ranker.fusion.first = LearnedRanker.fit([val.sets[i].features for i in keep], [targets[i] for i in keep],
                                                FEATURES, seed)
        val.first = [ranker.fusion.first.score(c.features) for c in val.sets]
        # Five folds give every document an out-of-fold score (the second stage's input); without a second stage one
        # fold is enough for an honest validation figure.
        scored = cross_fit([c.features for c in val.sets], targets, keep, FEATURES, seed, val.first,
                           FOLDS if out_of_fold else 1)
        out["fusion"] = "learned"
        out["first_importance"] = ranker.fusion.first.importance()
        out[f"val_first_oof_{TUNE_METRIC}"] = evaluate(_rankings([val.sets[i] for i in scored],
                                                                 [val.first[i] for i in scored]),
                                                       [val.gold[i] for i in scored], (TUNE_METRIC,))[TUNE_METRIC]
        out["val_first_oof_docs"] = len(scored)
    else:
        ranker.fusion.first = None
        val.first = [ranker.fusion.blend.first_stage(c) for c in val.sets]
        out["fusion"] = "blend"
    return out


def fit_second_stage(ranker: BiCrossRanker, val: Validation, seed: int = 0) -> dict[str, Any]:
    """Fit how the shortlist is ordered with the cross-encoder's scores (learned when the first stage is)."""
    if not val.texts or ranker.cross is None:
        return {}
    if not val.sets:
        fit_first_stage(ranker, val, "learned" if ranker.fusion.learned else "blend", seed)
    n = ranker.fusion.candidates
    heads, firsts = zip(*(c.top(f, n) for c, f in zip(val.sets, val.first, strict=True)), strict=True)
    logits = ranker.cross_logits(val.texts, heads)
    blend, best = ranker.fusion.blend, (-1.0, 0.0)
    blend_firsts = [blend.first_stage(h) for h in heads]
    for w in BI_WEIGHT_GRID:
        blend.bi_weight = w
        scores = [blend.final(f, lg) for f, lg in zip(blend_firsts, logits, strict=True)]
        m = evaluate(_rankings(heads, scores), val.gold, (TUNE_METRIC,))[TUNE_METRIC]
        if m > best[0] + 1e-9:
            best = (m, w)
    blend.bi_weight = best[1]
    out: dict[str, Any] = {"bi_weight": best[1], f"val_blend_{TUNE_METRIC}": best[0]}
    keep = [i for i, g in enumerate(val.gold) if g]
    if ranker.fusion.first is not None:
        rows = [np.column_stack([h.features, f, lg]) for h, f, lg in zip(heads, firsts, logits, strict=True)]
        targets = _targets(heads, val.gold)
        ranker.fusion.second = LearnedRanker.fit([rows[i] for i in keep], [targets[i] for i in keep],
                                                 CROSS_FEATURES, seed)
        out["second_importance"] = ranker.fusion.second.importance()
        # The rule below compares the two stages on documents neither was fitted on: the second stage cross-fitted.
        seconds: list[np.ndarray] = [np.zeros(0)] * len(heads)
        cross_fit(rows, targets, keep, CROSS_FEATURES, seed, seconds)
    else:
        seconds = [blend.final(f, lg) for f, lg in zip(blend_firsts, logits, strict=True)]
    out.update(fit_rerank_rule(ranker.fusion, heads, firsts, seconds, val.gold))
    return out


MIN_RERANK_GAIN = 0.005  # validation nDCG@10 the re-ranker must add over the first stage, else the first stage serves
RERANK_TOLERANCE = 0.002  # the cascade re-ranks the fewest documents whose gain is this close to the best one
RERANK_SHARES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def fit_rerank_rule(fusion: Fusion, heads: Sequence[Candidates], firsts: Sequence[np.ndarray],
                    seconds: Sequence[np.ndarray], gold: Sequence[set[int]]) -> dict[str, Any]:
    """Decide which documents the re-ranker reads, from validation documents' out-of-fold first-stage scores
    (``firsts``, best first, for the shortlists ``heads``) and second-stage scores (``seconds``).

    For each share of the documents the first stage is least sure of (the smallest :func:`margin`), the nDCG@10 that
    re-ranking them alone adds over the first stage; the rule re-ranks the smallest share within ``RERANK_TOLERANCE``
    of the best gain ("all" when that is every document), and none ("off") when no share adds ``MIN_RERANK_GAIN``:
    a re-ranker that learned nothing the first stage knows costs its latency for nothing.
    """
    if not heads:
        return {}
    first = np.array([evaluate([[int(i) for i in h.ids]], [g], (TUNE_METRIC,))[TUNE_METRIC]
                      for h, g in zip(heads, gold, strict=True)])
    second = np.array([evaluate(_rankings([h], [s]), [g], (TUNE_METRIC,))[TUNE_METRIC]
                       for h, s, g in zip(heads, seconds, gold, strict=True)])
    margins = np.array([margin(f) for f in firsts])
    ordered = np.sort(margins)
    gains = {}
    for share in RERANK_SHARES:
        cut = float("inf") if share >= 1.0 else float(ordered[int(share * len(ordered))])
        chosen = margins < cut
        gains[share] = (float(np.mean(np.where(chosen, second, first)) - np.mean(first)), cut, float(chosen.mean()))
    best = max(g for g, _, _ in gains.values())
    out: dict[str, Any] = {f"val_first_oof_shortlist_{TUNE_METRIC}": float(first.mean()),
                           f"val_second_oof_{TUNE_METRIC}": float(second.mean()),
                           "rerank_gains": {f"{k:.1f}": round(v[0], 4) for k, v in gains.items()}}
    if best < MIN_RERANK_GAIN:
        fusion.rerank, fusion.rerank_margin, fusion.rerank_gain, fusion.rerank_share = "off", float("inf"), best, 0.0
    else:
        share = min(k for k, (g, _, _) in gains.items() if g >= best - RERANK_TOLERANCE)
        gain, cut, fraction = gains[share]
        fusion.rerank = "all" if share >= 1.0 else "cascade"
        fusion.rerank_margin, fusion.rerank_gain, fusion.rerank_share = cut, gain, fraction
    out.update(rerank_rule=fusion.rerank, rerank_gain=fusion.rerank_gain, rerank_share=fusion.rerank_share)
    return out


def top_k_agreement(a: Sequence[Sequence[Any]], b: Sequence[Sequence[Any]], k: int = 10) -> float:
    """Mean share of each document's top-``k`` labels two rankings have in common."""
    return float(np.mean([len({p.label_id for p in x[:k]} & {p.label_id for p in y[:k]}) / k
                          for x, y in zip(a, b, strict=True)])) if a else 1.0


INT8_AGREEMENT = 0.98  # int8 serves on CPUs only where its top-10 keeps this much of PyTorch's


def choose_cpu_runtime(ranker: BiCrossRanker, texts: list[str]) -> dict[str, Any]:
    """Export the cross-encoder to ONNX and pick the CPU runtime: int8 where its top-10 agrees with PyTorch's on
    ``texts`` (validation documents) at least :data:`INT8_AGREEMENT`, else fp32 (exact)."""
    import tempfile

    from core.model.cross import OnnxCrossScorer

    torch_cross = ranker.cross
    if not texts or not isinstance(torch_cross, CrossScorer):
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        files = torch_cross.export_onnx(Path(tmp))
        reference = ranker.rank(texts, k=10, every=True)
        ranker.cross = OnnxCrossScorer(torch_cross.path, Path(tmp) / files["int8"], torch_cross.max_length)
        try:
            agreement = top_k_agreement(reference, ranker.rank(texts, k=10, every=True))
        finally:
            ranker.cross = torch_cross
    torch_cross.cpu_runtime = "onnx-int8" if agreement >= INT8_AGREEMENT else "onnx"
    return {"int8_top10_agreement": agreement, "cpu_runtime": torch_cross.cpu_runtime}


@dataclass(frozen=True)
class BudgetPlan:
    """When each training loop must stop for a job to end by its deadline (``time.monotonic()`` seconds), and what
    the budget cannot afford.

    Made after the sparse backend is fitted (its time is then known). The work after the loops (embedding labels and
    training documents, the fusion on the validation documents, the evaluation, and with a cross-encoder its
    negative mining, scoring, export and int8 check) is estimated from ``doc_seconds``, the measured time to embed
    one document, in the units below, with a safety margin; the loops share what is left (the bi-encoder
    ``BI_SHARE`` of it when both train). A cross-encoder whose work would take more than ``CROSS_AT_MOST`` of the
    time left is not trained (``train_cross`` false, ``note`` says why): at a library's scale on a CPU, scoring 30
    candidates of every validation and test document costs hours, and the bi-encoder would get nothing. The
    evaluation gets at most ``EVAL_AT_MOST`` of the budget: beyond it, the first ``eval_docs`` test documents.
    """

    bi_deadline: float | None
    cross_deadline: float | None
    doc_seconds: float
    reserved_seconds: float
    train_cross: bool = False
    eval_docs: int = 0
    note: str = ""

    # In documents embedded; measured on TIBKAT (41k subjects, 37k records, 2 cores): the neighbour memory's
    # embedding 1.05 per training record, the fusion's candidates and fit 3.4 per validation record.
    PER_LABEL, PER_TRAIN_DOC, PER_VALIDATION_DOC, PER_RANKED_DOC = 0.1, 1.1, 3.5, 1.5
    PER_CROSS_DOC = 32.0  # one document's candidates scored by the cross-encoder
    FIXED_S, CROSS_FIXED_S, MARGIN, BI_SHARE = 30.0, 60.0, 1.1, 0.6
    CROSS_AT_MOST, EVAL_AT_MOST = 0.5, 0.15

    @classmethod
    def make(cls, deadline: float, cfg: TrainConfig, doc_seconds: float, labels: int, train_docs: int,
             validation_docs: int, eval_docs: int, now: float | None = None) -> BudgetPlan:
        now = time.monotonic() if now is None else now
        left = max(0.0, deadline - now)
        cap = int(cls.EVAL_AT_MOST * left / (cls.MARGIN * cls.PER_RANKED_DOC * doc_seconds)) if doc_seconds > 0 else 0
        evaluated = min(eval_docs, max(cap, min(eval_docs, 500)))
        units = (cls.PER_LABEL * labels + cls.PER_TRAIN_DOC * train_docs * bool(cfg.neighbours)
                 + cls.PER_VALIDATION_DOC * validation_docs + cls.PER_RANKED_DOC * evaluated)
        base = cls.MARGIN * (units * doc_seconds + cls.FIXED_S)
        # Mining negatives, the second stage (5 folds of validation scores), the int8 check, the evaluation.
        cross_units = cls.PER_RANKED_DOC * train_docs + cls.PER_CROSS_DOC * (3 * validation_docs + evaluated)
        cross = cls.MARGIN * (cross_units * doc_seconds + cls.CROSS_FIXED_S) if cfg.train_cross else 0.0
        notes = []
        if evaluated < eval_docs:
            notes.append(f"evaluated on the first {evaluated:,} of {eval_docs:,} test documents (the evaluation gets "
                         f"at most {cls.EVAL_AT_MOST:.0%} of the budget)")
        train_cross = cfg.train_cross
        if train_cross and cross > cls.CROSS_AT_MOST * max(0.0, left - base):
            train_cross, cross = False, 0.0
            notes.append(f"no cross-encoder: its work would take about {cls.MARGIN * (cross_units * doc_seconds) / 60:,.0f} "
                         f"min of the {max(0.0, left - base) / 60:,.0f} min left for training")
        reserved = base + cross
        loops_end = deadline - reserved
        note = "; ".join(notes)
        if not cfg.train_bi:
            return cls(None, loops_end, doc_seconds, reserved, train_cross, evaluated, note)
        if not train_cross:
            return cls(loops_end, None, doc_seconds, reserved, False, evaluated, note)
        bi_end = now + cls.BI_SHARE * max(0.0, loops_end - now)
        return cls(bi_end, max(bi_end, loops_end), doc_seconds, reserved, True, evaluated, note)


def doc_seconds(encoder: Any, texts: Sequence[str], sample: int = 64) -> float:
    """Measured seconds to embed one document (a sample of ``texts``) with ``encoder``."""
    chosen = list(texts[:sample]) or ["."]
    clock = time.monotonic()
    encoder.encode(chosen, batch_size=32, show_progress_bar=False)
    return (time.monotonic() - clock) / len(chosen)


def fit_bicross(encoder_path: str, device: str, labels: Sequence[LabelRow], texts: Sequence[str],
                gold: Sequence[set[int]], cfg: TrainConfig, progress: Progress = no_progress,
                cross_init: str | None = None, base: BiCrossRanker | None = None, deadline: float | None = None,
                eval_docs: int = 0) -> FitResult:
    """Train the bi-encoder, the sparse backend and the cross-encoder (as ``cfg`` asks) and fit the fusion.

    A share of the training documents (``cfg.validation_share``) is held out: the fusion is fitted on them,
    on features the models did not learn from.

    Args:
        encoder_path: checkpoint the bi-encoder starts from.
        cross_init: checkpoint the cross-encoder starts from (default: ``encoder_path``).
        base: a served ranker whose cross-encoder is kept when ``cfg.train_cross`` is off.
        deadline: ``time.monotonic()`` by which the whole job should end (a time budget); the training loops stop
            early to leave time for the rest, ``eval_docs`` documents evaluated after this returns included.
    """
    if not any(gold):
        raise ModelError("There is nothing to train on: no training document has a gold label.")
    tr, val = validation_split(len(texts), cfg.validation_share, cfg.seed)
    tr_texts, tr_gold = [texts[i] for i in tr], [gold[i] for i in tr]
    val_texts, val_gold = [texts[i] for i in val], [gold[i] for i in val]
    known = {lab.id for lab in labels}
    tr_gold = [{g for g in s if g in known} for s in tr_gold]
    val_gold = [{g for g in s if g in known} for s in val_gold]
    validation = Validation(val_texts, val_gold)
    started = time.monotonic()
    bi = load_bi_encoder(encoder_path, device, cfg.max_seq_length)
    terms = characteristic_terms(tr_texts, tr_gold, cfg.label_terms) if cfg.label_terms else None
    choice: dict[str, Any] = {}
    if terms and cfg.label_text == "auto":
        progress(0.005, "comparing label texts (names, names with their records' words) on the validation documents")
        terms, choice = choose_label_terms(bi, labels, tr_gold, terms, cfg, validation)
    elif cfg.label_text == "name":
        terms = None
    table = make_label_table(labels, tr_gold, cfg.label_alts, cfg.label_parents, terms)
    stats: dict[str, Any] = {"train_docs": len(tr), "validation_docs": len(val), "labels": len(table),
                             "labels_with_terms": len(terms or {}), **choice, "notes": []}  # notes: what was left out
    sparse = None
    if cfg.sparse:  # first: it does not need the bi-encoder, and a budget's plan then knows what it cost
        progress(0.01, f"training the sparse backend (TF-IDF + Omikuji) on {len(tr):,} documents")
        clock = time.monotonic()
        try:
            sparse = SparseBackend.fit(tr_texts, tr_gold, SparseConfig(seed=cfg.seed))
        except ModelError as exc:  # e.g. too few documents for a vocabulary: the other sources still rank
            stats["notes"].append(f"no sparse backend: {exc}")
        stats["sparse_seconds"] = time.monotonic() - clock
    train_cross = cfg.train_cross
    plan = None
    if deadline is not None:
        plan = BudgetPlan.make(deadline, cfg, doc_seconds(bi, tr_texts), len(table), len(tr), len(val), eval_docs)
        stats["budget"] = {"reserved_seconds": plan.reserved_seconds, "doc_seconds": plan.doc_seconds,
                           "eval_docs": plan.eval_docs, "note": plan.note}
        stats["notes"] += [plan.note] if plan.note else []
        train_cross = plan.train_cross
    if cfg.train_bi:
        label_texts = table.text_map()
        stats["bi"] = train_bi_encoder(bi, tr_texts, tr_gold, label_texts, cfg, stage(progress, 0.03, 0.4),
                                       deadline=plan and plan.bi_deadline)
    progress(0.41, f"embedding {len(table):,} labels and building the HNSW index")
    fusion = Fusion(candidates=cfg.candidates, sparse_candidates=cfg.sparse_candidates if cfg.sparse else 0,
                    neighbours=cfg.neighbours)
    ranker = BiCrossRanker.build(bi, table, fusion=fusion)
    ranker.sparse = sparse
    tr_vectors = None
    if cfg.neighbours:
        clock = time.monotonic()
        tr_vectors = encode(bi, tr_texts, progress=lambda done, total: progress(
            0.42 + 0.03 * done / total, f"embedding the training documents for the neighbour memory: {done:,} of "
                                        f"{total:,}"))
        ranker.memory = NeighbourMemory(tr_vectors, [sorted(g) for g in tr_gold])
        stats["memory_seconds"] = time.monotonic() - clock
    progress(0.45, f"fitting the first stage of the fusion on {len(val):,} validation documents")
    clock = time.monotonic()
    # Out-of-fold first-stage scores only serve the second stage, which needs a cross-encoder.
    stats.update(fit_first_stage(ranker, validation, cfg.fusion, cfg.seed,
                                 out_of_fold=train_cross or (base is not None and base.cross is not None)))
    stats["first_seconds"] = time.monotonic() - clock
    if train_cross:
        progress(0.47, "mining cross-encoder negatives from the merged candidates")
        rng = random.Random(cfg.seed)
        cand, _ = ranker.candidates(tr_texts, n=cfg.cross_top_k, doc_vectors=tr_vectors)
        shortlists, cross_cfg = [list(r) for r in cand], cfg
        examples = cross_groups(tr_gold, shortlists, cfg, rng) if cfg.cross_loss == "listwise" else []
        if cfg.cross_loss == "listwise" and not examples:  # e.g. a taxonomy smaller than a group
            stats["notes"].append(f"no shortlist holds {cfg.cross_group} labels for a listwise group: the "
                                  "cross-encoder trained pointwise")
            cross_cfg = replace(cfg, cross_loss="pointwise")
        examples = examples or cross_examples(tr_gold, shortlists, cross_cfg, rng)
        cross = CrossScorer(cross_init or encoder_path, str(bi.device), cfg.cross_max_length)
        stats["cross_init"] = cross_init or encoder_path
        stats["cross"] = train_cross_encoder(cross, examples, tr_texts, table.text_map(), cross_cfg,
                                             stage(progress, 0.48, 0.92), deadline=plan and plan.cross_deadline)
        ranker.cross = cross
    elif base is not None and base.cross is not None:
        ranker.cross = base.cross
    if ranker.cross is not None:
        progress(0.93, "fitting the second stage of the fusion (with the cross-encoder) on the validation documents")
        clock = time.monotonic()
        stats.update(fit_second_stage(ranker, validation, cfg.seed))
        stats["second_seconds"] = time.monotonic() - clock
        if train_cross:
            progress(0.97, "checking the int8 ONNX cross-encoder against PyTorch on the validation documents")
            stats.update(choose_cpu_runtime(ranker, val_texts))
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
                    batch: int = 32, progress: Progress = no_progress,
                    metrics: tuple[str, ...] = ("P@1", "P@5", "R@10", "nDCG@10", "R@30"),
                    doc_vectors: np.ndarray | None = None, exclude: frozenset[int] = frozenset(),
                    **rank_options: Any) -> dict[str, float]:
    """P@1, P@5, R@10, nDCG@10 and R@30 (or ``metrics``) of the top-``k`` over documents.

    Args:
        doc_vectors: the documents' bi-encoder vectors when already computed (BiCross only).
        exclude: labels taken out of each ranking before its top ``k`` is read.
        rank_options: passed to ``ranker.rank`` (e.g. ``rerank=False``: the first stage alone).
    """
    rankings = []
    for s in range(0, len(texts), batch):
        vectors = {} if doc_vectors is None else {"doc_vectors": doc_vectors[s:s + batch]}
        ranked = ranker.rank(texts[s:s + batch], k=k + len(exclude), **vectors, **rank_options)
        rankings += [[p for p in r if p.label_id not in exclude][:k] for r in ranked]
        progress(min(1.0, (s + batch) / len(texts)), f"evaluated {min(len(texts), s + batch)} of {len(texts)}")
    return score_rankings(rankings, gold, metrics)
