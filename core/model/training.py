"""Training the bi-encoder (MNRL with conflict-free batches), the cross-encoder and the baseline head."""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import ModelError
from core.jobs import eta_text
from core.model.cross import CrossScorer

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Progress = Callable[[float, str], None]


def no_progress(_: float, __: str) -> None:
    return None


@dataclass
class TrainConfig:
    """What a lead can choose for a training run (defaults fit the 60-minute CPU budget)."""

    train_bi: bool = True
    train_cross: bool = True
    train_baseline: bool = False
    epochs: int = 1
    batch_size: int = 32
    max_seq_length: int = 128
    lr: float = 3e-5
    warmup_ratio: float = 0.1
    seed: int = 0
    cross_epochs: int = 1
    cross_max_length: int = 128
    cross_negatives: int = 3
    cross_top_k: int = 100
    cross_positives_per_doc: int = 0  # 0: every gold label of every training document
    cross_max_examples: int = 0  # 0: no cap (a CPU time budget sets one)
    cross_lr: float = 3e-5
    cross_init: str = ""  # "" (the configured default), "reranker", "encoder" or a checkpoint folder
    # "pointwise": binary cross-entropy on (document, label) pairs, negatives drawn from the top ``cross_top_k``;
    # "listwise": groups of ``cross_group`` labels of a document's first-stage shortlist (its top ``candidates``, what
    # the re-ranker reads when serving), each positive against the group's negatives in a softmax. Listwise, chosen on
    # PubMed's validation documents with the same 6,400 pairs each (bench/rerank_variants.py): re-ranking every
    # document +.0008 nDCG@10 against -.0101 for pointwise.
    cross_loss: str = "listwise"
    cross_group: int = 8
    sparse: bool = True
    neighbours: int = 20
    fusion: str = "learned"  # "learned" (LightGBM on the validation slice) or "blend" (weighted, grid-tuned)
    candidates: int = 30
    sparse_candidates: int = 50
    bi_leftover_pass: bool = False
    baseline_epochs: int = 8
    baseline_lr_head: float = 3e-3
    label_alts: int = 0
    # Words that characterise a label's training documents, appended to its name as the text the encoders read
    # (0: the name alone). On held-out TIBKAT training records it lifted the pretrained encoder's R@10 from .333 to
    # .419, and from .146 to .345 on subjects known only by a German name (bench/tibkat.py).
    label_terms: int = 6
    # "auto": the terms only where the starting encoder ranks the validation documents better with them; "name" or
    # "terms" to decide without looking.
    label_text: str = "auto"
    label_parents: int = 0
    validation_share: float = 0.1
    time_budget_min: float = 0.0  # 0: none; else the whole job (training, fitting, evaluation) aims to end within it
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # a bad choice is refused before any training starts
        if self.cross_loss not in ("pointwise", "listwise"):
            raise ModelError(f"Unknown cross-encoder loss {self.cross_loss!r}; use pointwise or listwise.")
        if self.label_text not in ("auto", "name", "terms"):
            raise ModelError(f"Unknown label text {self.label_text!r}; use auto, name or terms.")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# --- the bi-encoder's batches -------------------------------------------------------------------


def conflict_free_batches(pairs: Sequence[tuple[int, int]], gold: Sequence[set[int]] | dict[int, set[int]],
                          batch_size: int, rng: random.Random, max_scan: int = 4000) -> list[list[int]]:
    """Group (document, label) pairs into batches for in-batch-negative training.

    A batch never holds the same label twice, never the same document twice, and never a pair
    whose label is a gold label of another document in the batch (that label would be taught as a
    wrong answer for that document). Pairs that fit no batch within ``max_scan`` look-ups wait for
    the next one; batches of fewer than two pairs carry no negative and are dropped.

    Returns:
        Lists of indices into ``pairs``.
    """
    order = list(range(len(pairs)))
    rng.shuffle(order)
    pending = deque(order)
    batches: list[list[int]] = []
    while pending:
        batch: list[int] = []
        labels: set[int] = set()
        docs: set[int] = set()
        golds: set[int] = set()
        skipped: list[int] = []
        scanned = 0
        while pending and len(batch) < batch_size and scanned < max_scan:
            i = pending.popleft()
            scanned += 1
            d, lab = pairs[i]
            if d in docs or lab in labels or lab in golds or (gold[d] & labels):
                skipped.append(i)
                continue
            batch.append(i)
            labels.add(lab)
            docs.add(d)
            golds |= gold[d]
        pending.extendleft(reversed(skipped))
        if len(batch) >= 2:  # a lone pair (it conflicts with everything left) is dropped
            batches.append(batch)
    return batches


def encoder_features(model: SentenceTransformer, texts: list[str]) -> dict[str, Any]:
    """Model inputs for ``texts`` on the model's device (tensors moved, other entries kept)."""
    prep = model.preprocess if hasattr(model, "preprocess") else model.tokenize
    return {k: (v.to(model.device) if hasattr(v, "to") else v) for k, v in prep(texts).items()}


class Steps:
    """One optimisation loop's bookkeeping: step the optimizer and a linear warmup/decay schedule, track loss,
    report progress with an ETA from the measured rate.

    With a ``deadline`` (``time.monotonic()`` seconds) the loop re-plans its length after every step from its
    measured speed: the schedule decays to zero at the last step that fits, and ``finished`` tells the caller
    to stop there (a time budget cuts the epoch, it does not leave the learning rate high).
    """

    MEASURE_AFTER = 3  # steps timed before the first re-plan (the first one carries warm-up costs)

    def __init__(self, name: str, parameters: Any, optimizer: Any, steps: int, warmup_ratio: float,
                 progress: Progress, clip: float | None = 1.0, deadline: float | None = None) -> None:
        from torch.optim.lr_scheduler import LambdaLR

        self.name, self.parameters, self.optimizer = name, list(parameters), optimizer
        self.planned = self.steps = max(1, steps)
        self.warmup = int(self.planned * warmup_ratio)
        self.scheduler = LambdaLR(optimizer, self._factor)
        self.progress, self.clip, self.deadline = progress, clip, deadline
        self.done, self.losses, self.started = 0, [], time.monotonic()

    def _factor(self, step: int) -> float:
        if step < self.warmup:
            return step / max(1, self.warmup)
        return max(0.0, (self.steps - step) / max(1, self.steps - self.warmup))

    @property
    def finished(self) -> bool:
        return self.done >= self.steps

    @property
    def seconds_per_step(self) -> float:
        return (time.monotonic() - self.started) / max(1, self.done)

    def _replan(self) -> None:
        if self.deadline is None or self.done < self.MEASURE_AFTER:
            return
        fits = self.done + int((self.deadline - time.monotonic()) / self.seconds_per_step)
        self.steps = max(self.done, min(self.planned, fits))

    def step(self, loss: Any, epoch: int, epochs: int) -> None:
        import torch

        loss.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()
        self.losses.append(float(loss.detach()))
        self.done += 1
        self._replan()
        eta = eta_text((self.steps - self.done) * self.seconds_per_step)
        cut = f" (time budget: {self.steps} of {self.planned})" if self.steps < self.planned else ""
        self.progress(self.done / self.steps, f"{self.name} epoch {epoch + 1}/{epochs}, step {self.done}/{self.steps}"
                                              f"{cut}, loss {self.recent_loss():.4f}, {eta}")

    def recent_loss(self) -> float:
        return float(np.mean(self.losses[-20:])) if self.losses else float("nan")

    def summary(self) -> dict[str, Any]:
        return {"steps": self.done, "planned_steps": self.planned, "final_loss": self.recent_loss(),
                "seconds": time.monotonic() - self.started, "seconds_per_step": self.seconds_per_step,
                "cut_by_budget": self.done < self.planned}


def train_bi_encoder(model: SentenceTransformer, doc_texts: Sequence[str], doc_gold: Sequence[set[int]],
                     label_texts: dict[int, str], cfg: TrainConfig, progress: Progress = no_progress,
                     pairs: Sequence[tuple[int, int]] | None = None, deadline: float | None = None) -> dict[str, Any]:
    """Fine-tune ``model`` in place with MultipleNegativesRankingLoss on positive (document, label) pairs.

    Args:
        doc_gold: every known gold label per document (used to keep wrong negatives out of batches).
        pairs: the (document index, label) pairs to learn from; default: every gold pair.
        deadline: ``time.monotonic()`` by which to stop (the schedule is re-planned to end there).

    Raises:
        ModelError: no (document, label) pair to learn from.
    """
    import torch
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    if pairs is None:
        pairs = [(d, lab) for d, gold in enumerate(doc_gold) for lab in sorted(gold)]
    pairs = [(d, lab) for d, lab in pairs if lab in label_texts]
    if not pairs:
        raise ModelError("There is nothing to train on: no document has a gold label. Import labelled documents first.")
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    model.max_seq_length = cfg.max_seq_length
    loss_fn = MultipleNegativesRankingLoss(model)
    epoch_batches = [conflict_free_batches(pairs, doc_gold, cfg.batch_size, rng) for _ in range(cfg.epochs)]
    if cfg.bi_leftover_pass:  # a second pass over the pairs no conflict-free batch took
        for batches in epoch_batches:
            placed = {i for b in batches for i in b}
            left = [i for i in range(len(pairs)) if i not in placed]
            batches += [[left[j] for j in b] for b in
                        conflict_free_batches([pairs[i] for i in left], doc_gold, cfg.batch_size, rng)]
    steps = sum(len(b) for b in epoch_batches)
    if steps == 0:
        raise ModelError("No training batch could be formed (every document shares its labels); add documents.")
    loop = Steps("bi-encoder", model.parameters(), torch.optim.AdamW(model.parameters(), lr=cfg.lr), steps,
                 cfg.warmup_ratio, progress, deadline=deadline)
    model.train()
    for epoch, batches in enumerate(epoch_batches):
        for batch in batches:
            if loop.finished:
                break
            docs = [doc_texts[pairs[i][0]] for i in batch]
            labs = [label_texts[pairs[i][1]] for i in batch]
            loop.step(loss_fn([encoder_features(model, t) for t in (docs, labs)], None), epoch, cfg.epochs)
    model.eval()
    placed = len({i for b in epoch_batches[0] for i in b})  # with the leftover pass, both passes
    return {"pairs": len(pairs), "pairs_placed": placed, **loop.summary()}


# --- the cross-encoder ---------------------------------------------------------------------------


def cross_examples(doc_gold: Sequence[set[int]], candidates: Sequence[Sequence[int]], cfg: TrainConfig,
                   rng: random.Random, hard_negatives: Sequence[set[int]] | None = None) -> list[tuple[int, int, float]]:
    """(document, label, target) triples: gold labels as positives, and per positive ``cfg.cross_negatives``
    labels drawn at random from the document's bi-encoder candidates that are not gold.

    Known-wrong labels (``hard_negatives``, e.g. SMEs' "no" answers) are used first.
    """
    out: list[tuple[int, int, float]] = []
    for d, gold in enumerate(doc_gold):
        if not gold:
            continue
        positives = sorted(gold)
        rng.shuffle(positives)
        if cfg.cross_positives_per_doc:
            positives = positives[: cfg.cross_positives_per_doc]
        pool = [c for c in candidates[d][: cfg.cross_top_k] if c not in gold and c >= 0]
        known = [c for c in (hard_negatives[d] if hard_negatives else ()) if c not in gold]
        need = cfg.cross_negatives * len(positives)
        negatives = known[:need]
        rest = [c for c in pool if c not in negatives]
        negatives += rng.sample(rest, min(len(rest), need - len(negatives)))
        out += [(d, p, 1.0) for p in positives] + [(d, n, 0.0) for n in negatives]
    rng.shuffle(out)
    if cfg.cross_max_examples and len(out) > cfg.cross_max_examples:
        out = out[: cfg.cross_max_examples]
    return out


def cross_groups(doc_gold: Sequence[set[int]], shortlists: Sequence[Sequence[int]], cfg: TrainConfig,
                 rng: random.Random) -> list[tuple[int, int, float]]:
    """Listwise examples: (document, label, target) triples in consecutive groups of ``cfg.cross_group``, each a
    document's gold labels (a quarter of the group at most; every gold label in some group) and negatives from the
    rest of its shortlist (the top ``cfg.candidates``). At most ``cfg.cross_max_examples`` triples, whole groups."""
    size = cfg.cross_group
    per = max(1, size // 4)
    groups: list[list[tuple[int, int, float]]] = []
    for d, gold in enumerate(doc_gold):
        positives = sorted(gold)
        rng.shuffle(positives)
        if cfg.cross_positives_per_doc:
            positives = positives[: cfg.cross_positives_per_doc]
        pool = [int(c) for c in shortlists[d][: cfg.candidates] if c >= 0 and int(c) not in gold]
        for s in range(0, len(positives), per):
            chosen = positives[s:s + per]
            if len(pool) < size - len(chosen):
                break
            groups.append([(d, p, 1.0) for p in chosen] + [(d, n, 0.0) for n in rng.sample(pool, size - len(chosen))])
    rng.shuffle(groups)
    if cfg.cross_max_examples:
        groups = groups[: max(1, cfg.cross_max_examples // size)]
    return [t for g in groups for t in g]


def listwise_loss(logits: Any, target: Any) -> Any:
    """Mean over positives of ``-log(e^s / (e^s + sum of the group's negatives' e^s))``; rows are groups."""
    import torch

    negatives = torch.logsumexp(logits.masked_fill(target > 0, float("-inf")), dim=1, keepdim=True)
    per = torch.logaddexp(logits, negatives) - logits
    return (per * target).sum() / target.sum().clamp(min=1.0)


def train_cross_encoder(scorer: CrossScorer, examples: Sequence[tuple[int, int, float]], doc_texts: Sequence[str],
                        label_texts: dict[int, str], cfg: TrainConfig, progress: Progress = no_progress,
                        deadline: float | None = None) -> dict[str, Any]:
    """Fine-tune the cross-encoder on (document, label, target) triples: binary cross-entropy, or with
    ``cfg.cross_loss`` "listwise" the softmax over each group of ``cfg.cross_group`` consecutive triples
    (:func:`cross_groups`)."""
    import torch

    if not any(t > 0 for _, _, t in examples):
        raise ModelError("The cross-encoder needs at least one positive (document, label) pair.")
    group = cfg.cross_group if cfg.cross_loss == "listwise" else 1
    if len(examples) % group:
        raise ModelError(f"Listwise examples come in groups of {group}; {len(examples)} do not.")
    torch.manual_seed(cfg.seed)
    model = scorer.model
    model.train()
    bs = max(1, cfg.batch_size // group) * group  # whole groups per batch
    steps = cfg.cross_epochs * ((len(examples) + bs - 1) // bs)
    loop = Steps("cross-encoder", model.parameters(), torch.optim.AdamW(model.parameters(), lr=cfg.cross_lr), steps,
                 cfg.warmup_ratio, progress, deadline=deadline)
    bce = torch.nn.BCEWithLogitsLoss()

    def loss_fn(logits: Any, target: Any) -> Any:
        return bce(logits, target) if group == 1 else listwise_loss(logits.view(-1, group), target.view(-1, group))

    for epoch in range(cfg.cross_epochs):
        for s in range(0, len(examples), bs):
            if loop.finished:
                break
            chunk = examples[s:s + bs]
            logits = scorer.logits([label_texts[lab] for _, lab, _ in chunk], [doc_texts[d] for d, _, _ in chunk])
            target = torch.tensor([t for _, _, t in chunk], dtype=torch.float32, device=scorer.device)
            loop.step(loss_fn(logits.float(), target), epoch, cfg.cross_epochs)
    model.eval()
    return {"examples": len(examples), **loop.summary()}
