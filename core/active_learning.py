"""The active-learning cycle for new labels: select -> oracle answers -> train (with replay) -> repeat."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.acquisition import Acquisition, Question, make_strategy
from core.errors import ModelError, XmtcError
from core.oracle import Answer, Oracle
from core.ranker import BiCrossRanker
from core.training import Progress, TrainConfig, no_progress, train_bi_encoder, train_cross_encoder


@dataclass
class ALConfig:
    """Settings of one campaign.

    Each iteration trains on the answers that arrived since the last one (so its cost stays flat
    however long the campaign runs), plus ``recall_ratio`` earlier "yes" answers per fresh one
    (the new labels are not forgotten either) and ``replay_ratio`` old (document, gold label)
    pairs per positive (the old labels are not forgotten).
    """

    questions_per_iteration: int = 150
    replay_ratio: float = 1.0
    recall_ratio: float = 1.0
    rerank_window: int = 32
    strategy: str = "greedy"
    train_batch: int = 16
    lr: float = 3e-5
    cross_lr: float = 3e-5
    cross_negatives: int = 3
    cross_top_k: int = 30
    cross_replay_docs: int = 32
    use_negative_answers: bool = True
    max_seq_length: int = 128
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Iteration:
    """What one iteration asked, learned and measured."""

    number: int
    asked: int
    positives: int
    negatives: int
    unsure: int
    seconds: float
    train: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class ActiveLearningCycle:
    """Teaches a served BiCross model new labels from oracle answers, without forgetting old ones.

    The new labels are embedded and indexed on construction (iteration 0: servable at once), with
    the prior of a typical label; as "yes" answers arrive a label's prior follows its confirmed count.
    Each training step learns the fresh "yes" answers plus replay (see :class:`ALConfig`); the
    cross-encoder also learns the "no" answers as hard negatives.

    Args:
        ranker: the served model (changed in place).
        texts: document id -> text, for every document that may be asked about or replayed.
        replay_gold: document id -> its known gold labels (old labels; the replay source).
        new_labels: label id -> text of each new label.
        pools: label id -> candidate documents for that label, best first (by the adapted encoder).
        resume: the model may serve the new labels already (a campaign's later iterations).
    """

    def __init__(self, ranker: BiCrossRanker, texts: Mapping[int, str], replay_gold: Mapping[int, set[int]],
                 new_labels: Mapping[int, str], pools: Mapping[int, Sequence[int]], cfg: ALConfig | None = None,
                 strategy: Acquisition | None = None, resume: bool = False) -> None:
        self.cfg = cfg or ALConfig()
        known = {int(i) for i in ranker.table.ids}
        clash = [name for lid, name in new_labels.items() if lid in known]
        if clash and not resume:
            raise XmtcError(f"{len(clash)} new label(s) are already in the model's taxonomy, e.g. {clash[:3]}.")
        empty = [new_labels[lid] for lid in new_labels if not pools.get(lid)]
        if len(empty) == len(new_labels):
            raise XmtcError("Every new label has an empty document pool: there is nothing to ask about.")
        missing = sorted({d for p in pools.values() for d in p} - set(texts))
        if missing:
            raise XmtcError(f"{len(missing)} pool document(s) have no text, e.g. ids {missing[:3]}.")
        self.empty_pools = empty
        self.ranker = ranker
        self.texts = dict(texts)
        self.replay_gold = {d: set(g) for d, g in replay_gold.items()}
        self._replay_pairs = [(d, lab) for d, gold in sorted(self.replay_gold.items()) for lab in sorted(gold)]
        self.new_labels = dict(new_labels)
        # Each pool's current order; duplicates dropped, labels with an empty pool left out.
        self.order = {lid: list(dict.fromkeys(p)) for lid, p in pools.items() if p}
        self.strategy = strategy or make_strategy(self.cfg.strategy)
        self.rng = random.Random(self.cfg.seed)
        self.answers: dict[Question, Answer] = {}
        self.trained: set[Question] = set()
        self.history: list[Iteration] = []
        ids = [i for i in self.new_labels if i not in known]  # resuming: the campaign's labels are served already
        self.base_freq = ranker.new_label_frequency()
        if ids:
            ranker.add_labels(ids, [self.new_labels[i] for i in ids], [f"new:{i}" for i in ids], freq=self.base_freq)

    @property
    def pools(self) -> dict[int, list[int]]:
        return self.order

    # --- selection -------------------------------------------------------------------------

    def ranked_pools(self) -> dict[int, list[int]]:
        """Each pool re-ordered by the current bi-encoder's document-label similarity.

        Only the first ``rerank_window`` unasked documents of each pool are re-scored (0: all of
        them): the batch is drawn from the top, and the cost stays flat on a large corpus.
        """
        window = self.cfg.rerank_window
        unasked = {lid: [d for d in order if (d, lid) not in self.answers] for lid, order in self.order.items()}
        heads = {lid: docs[:window] if window > 0 else docs for lid, docs in unasked.items()}
        docs = sorted({d for head in heads.values() for d in head})
        if not docs:
            return {lid: [] for lid in self.order}
        vecs = self.ranker.embed_documents([self.texts[d] for d in docs])
        row = {d: i for i, d in enumerate(docs)}
        for lid, head in heads.items():
            if not head:
                self.order[lid] = []
                continue
            sims = vecs[[row[d] for d in head]] @ self.ranker.vectors[self.ranker.table.row(lid)]
            self.order[lid] = [head[i] for i in np.argsort(-sims, kind="stable")] + unasked[lid][len(head):]
        return self.order

    def select(self, n: int | None = None) -> list[Question]:
        """The next questions; never one that was asked before."""
        return self.strategy.select(self.ranked_pools(), set(self.answers), n or self.cfg.questions_per_iteration,
                                    self.rng)

    def record(self, questions: Sequence[Question], answers: Sequence[Answer]) -> None:
        """Keep the answers and let each new label's prior follow its confirmed documents."""
        for q, a in zip(questions, answers, strict=True):
            self.answers[q] = a
        yes = Counter(lab for (_, lab), a in self.answers.items() if a == "yes")
        self.ranker.set_frequency({lid: max(self.base_freq, float(yes[lid])) for lid in self.new_labels})

    # --- training --------------------------------------------------------------------------

    def _gold(self, doc: int) -> set[int]:
        new = {lab for (d, lab), a in self.answers.items() if d == doc and a == "yes"}
        return self.replay_gold.get(doc, set()) | new

    def replay_sample(self, n: int) -> list[tuple[int, int]]:
        """``n`` random (document, old gold label) pairs from the whole corpus."""
        return self.rng.sample(self._replay_pairs, min(n, len(self._replay_pairs)))

    def train(self, progress: Progress = no_progress) -> dict[str, Any]:
        """One training step: bi-encoder on fresh positives + replay, re-index, cross-encoder."""
        cfg = self.cfg
        fresh = [q for q in self.answers if q not in self.trained]
        fresh_pos = [q for q in fresh if self.answers[q] == "yes"]
        if not fresh_pos:
            return {"skipped": "no new positive answer yet"}
        earlier = [q for q in self.answers if q in self.trained and self.answers[q] == "yes"]
        recalled = self.rng.sample(earlier, min(len(earlier), round(len(fresh_pos) * cfg.recall_ratio)))
        positives = fresh_pos + recalled
        replay = self.replay_sample(round(len(positives) * cfg.replay_ratio))
        pairs = positives + replay
        docs = sorted({d for d, _ in pairs} | {d for d, _ in fresh})
        index = {d: i for i, d in enumerate(docs)}
        label_texts = self.ranker.table.text_map()
        tcfg = TrainConfig(epochs=1, batch_size=cfg.train_batch, lr=cfg.lr, cross_lr=cfg.cross_lr,
                           max_seq_length=cfg.max_seq_length, warmup_ratio=0.0, seed=self.rng.randrange(10**6))
        doc_texts = [self.texts[d] for d in docs]
        golds = [self._gold(d) for d in docs]
        stats: dict[str, Any] = {"positives": len(positives), "fresh": len(fresh_pos), "replay": len(replay)}
        clock = time.monotonic()
        seconds: dict[str, float] = {}
        try:
            stats["bi"] = train_bi_encoder(self.ranker.bi_encoder, doc_texts, golds, label_texts, tcfg,
                                           lambda f, m: progress(0.4 * f, m),
                                           pairs=[(index[d], lab) for d, lab in pairs])
        except ModelError as exc:  # e.g. too few compatible pairs to form a batch yet: wait for more answers
            stats["bi"] = {"skipped": str(exc)}
        seconds["bi"], clock = time.monotonic() - clock, time.monotonic()
        progress(0.45, "re-embedding labels")
        self.ranker.reindex()
        seconds["labels"], clock = time.monotonic() - clock, time.monotonic()
        if self.ranker.cross is not None:
            fresh_neg = [q for q in fresh if self.answers[q] == "no"]
            examples = self._cross_examples(positives, fresh_neg, docs, index, golds)
            stats["cross"] = train_cross_encoder(self.ranker.cross, examples, doc_texts, label_texts, tcfg,
                                                 lambda f, m: progress(0.5 + 0.5 * f, m))
            seconds["cross"] = time.monotonic() - clock
        self.trained |= set(fresh)
        stats["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
        return stats

    def _cross_examples(self, positives: list[Question], negatives: list[Question], docs: list[int],
                        index: dict[int, int], golds: list[set[int]]) -> list[tuple[int, int, float]]:
        cfg = self.cfg
        out = [(index[d], lab, 1.0) for d, lab in positives]
        if cfg.use_negative_answers:
            out += [(index[d], lab, 0.0) for d, lab in negatives]
        # Random negatives from the updated bi-encoder's top labels (never a known gold label).
        cand, _ = self.ranker.candidates([self.texts[d] for d, _ in positives], n=cfg.cross_top_k)
        for (d, _), row in zip(positives, cand, strict=True):
            pool = [int(c) for c in row if c >= 0 and int(c) not in golds[index[d]]]
            out += [(index[d], c, 0.0) for c in self.rng.sample(pool, min(cfg.cross_negatives, len(pool)))]
        # A little replay keeps the cross-encoder's old labels from fading.
        replay_docs = [d for d in docs if self.replay_gold.get(d)][: cfg.cross_replay_docs]
        for d in replay_docs:
            out.append((index[d], self.rng.choice(sorted(self.replay_gold[d])), 1.0))
        self.rng.shuffle(out)
        return out

    # --- the loop --------------------------------------------------------------------------

    def step(self, oracle: Oracle, progress: Progress = no_progress) -> Iteration | None:
        """One select -> answer -> train round (``None`` when every pool is exhausted)."""
        started = time.monotonic()
        questions = self.select()
        if not questions:
            return None
        select_s = time.monotonic() - started
        answers = oracle.answer(questions)
        asked_at = time.monotonic()
        self.record(questions, answers)
        train = self.train(progress)
        train.setdefault("seconds", {})["select"] = round(select_s, 2)
        number = self.history[-1].number + 1 if self.history else 1
        # The oracle's own time (an SME thinking) is not the model's: leave it out of the iteration time.
        seconds = select_s + (time.monotonic() - asked_at)
        record = Iteration(number, len(questions), answers.count("yes"), answers.count("no"),
                           answers.count("unsure"), seconds, train)
        self.history.append(record)
        return record

    def run(self, oracle: Oracle, iterations: int, evaluate: Callable[[BiCrossRanker, int], dict] | None = None,
            progress: Progress = no_progress) -> list[Iteration]:
        """Run ``iterations`` rounds; ``evaluate(ranker, iteration)`` is measured before the first and after each."""
        if evaluate is not None and not self.history:
            self.history.append(Iteration(0, 0, 0, 0, 0, 0.0, metrics=evaluate(self.ranker, 0)))
        for it in range(iterations):
            record = self.step(oracle, lambda f, m, it=it: progress((it + f) / iterations, m))
            if record is None:
                break
            if evaluate is not None:
                record.metrics = evaluate(self.ranker, record.number)
        return self.history

    def answers_per_label(self) -> dict[int, int]:
        counts = dict.fromkeys(self.new_labels, 0)
        for _, lab in self.answers:
            counts[lab] = counts.get(lab, 0) + 1
        return counts
