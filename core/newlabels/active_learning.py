"""The active-learning cycle for new labels: select -> oracle answers -> train (with replay) -> repeat."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.errors import ModelError, XmtcError
from core.model.encoders import similarities
from core.model.ranker import BiCrossRanker
from core.model.training import Progress, TrainConfig, no_progress, train_bi_encoder, train_cross_encoder
from core.newlabels.acquisition import Acquisition, Question, make_strategy
from core.newlabels.oracle import Answer, Oracle


@dataclass
class ALConfig:
    """Settings of one campaign (the benchmark runs these very defaults, as the app does).

    Every iteration learns from *all* the answers given so far, in the parts that refit in seconds:
    each new label's vector becomes a prototype (its name's embedding moved towards its confirmed
    documents and away from its rejected ones: Rocchio's ``proto_*`` weights), the neighbour memory
    and the sparse backend are refit with the confirmed documents (and, with ``seen_after``, the
    label's prior follows its confirmed count). The cross-encoder learns the fresh "yes" and "no" answers, ``recall_ratio``
    earlier answers per fresh one and ``replay_ratio`` old (document, gold label) pairs per positive,
    at most ``cross_examples`` of them per iteration (its cost bounds the iteration's time on a CPU).
    The bi-encoder itself stays as it is unless ``learn_encoder``: old labels keep their vectors,
    the neighbour memory its geometry.
    """

    questions_per_iteration: int = 150
    replay_ratio: float = 1.0
    recall_ratio: float = 1.0
    rerank_window: int = 0  # 0: each iteration re-scores every unasked pool document
    strategy: str = "greedy"
    give_up_after: int = 0  # stop asking about a label after this many "no" answers in a row (0: never)
    # Confirmed documents before a label counts as trained on, with their count as its frequency (0: never).
    # Never, by default: chosen on held-out TRAIN documents (bench.active_learning), where a label kept "without
    # training documents" while its evidence arrives through the monotone signals (prototype cosine, neighbour
    # votes, sparse scores) was found more often than one the fusion treats as a rare label (mean R@10 .291 vs .239).
    seen_after: int = 0
    proto_name: float = 1.0
    proto_yes: float = 0.75
    proto_no: float = 0.15
    refit_sparse: bool = True
    # When the campaign ends, the bi-encoder may learn every confirmed answer with this many old (document, gold label)
    # pairs per answer (:meth:`ActiveLearningCycle.consolidate`; 0: the bi-encoder stays frozen). Minutes at a
    # library's scale (the labels and the neighbour memory are embedded again), so never inside an iteration. Off by
    # default: on TIBKAT's held-out training records it did not help (old subjects .7067 vs .7075 frozen, new .503
    # vs .506; bench.active_learning_tibkat).
    consolidate_replay: float = 0.0
    # The sparse backend learns the answers as one head per campaign label over its TF-IDF features (a second);
    # off: its trees are refit on the whole corpus each iteration (minutes at a library's scale). The heads'
    # negatives: the label's "no" answers and ``head_background`` documents drawn from the corpus once; a "yes"
    # weighs ``head_positive_weight`` negatives (0: balanced). Chosen on the held-out training records of PubMed
    # (bench.active_learning, section active_learning_sparse_heads) and TIBKAT (bench.active_learning_tibkat): the
    # most new-label recall among the settings whose old labels lose less than a point on both. A "yes" weighing 3 to
    # 100 "no" ties on PubMed's 46 held-out documents; on TIBKAT's 461, 100 finds the most (.533 vs .506 at 10). A
    # lower C (1) or balanced heads find more still, and cost the old labels 1.2 to 4 points on both corpora.
    sparse_heads: bool = True
    head_background: int = 2000
    head_c: float = 10.0
    head_positive_weight: float = 100.0
    learn_encoder: bool = False
    train_batch: int = 16
    lr: float = 3e-5
    cross_lr: float = 3e-5
    cross_negatives: int = 1
    # One iteration's cross-encoder examples, the fresh answers first (0: no cap; ~1.5 s/16 on a CPU). Fresh answers
    # beyond it are not marked learned: the next iteration takes them.
    cross_examples: int = 192
    cross_top_k: int = 30
    cross_replay_docs: int = 32
    # Train the cross-encoder only where, on the fresh answers it has not learned, it separates "yes" from "no"
    # better than the first stage (:meth:`ActiveLearningCycle.cross_check`).
    cross_check: bool = True
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
    the frequency of a label without training documents; as answers arrive each one is learned as
    :class:`ALConfig` describes. Rebuilt from the same answers, the model is the same: a campaign
    may restart its cycle from a saved version each iteration (``resume``).

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
        # The sparse heads' background negatives: the same documents every iteration (and every rebuilt cycle).
        self._background = random.Random(self.cfg.seed).sample(sorted(self.texts),
                                                               min(self.cfg.head_background, len(self.texts)))
        self.answers: dict[Question, Answer] = {}
        self.trained: set[Question] = set()
        self.history: list[Iteration] = []
        self._vectors: dict[int, np.ndarray] = {}  # document id -> bi-encoder vector (while the encoder is unchanged)
        ids = [i for i in self.new_labels if i not in known]  # resuming: the campaign's labels are served already
        self.base_freq = ranker.new_label_frequency()
        if ids:
            ranker.add_labels(ids, [self.new_labels[i] for i in ids], [f"new:{i}" for i in ids], freq=self.base_freq)
        self._names = self._name_vectors()
        # The re-ranker never ranks a campaign label lower than the first stage does (its second stage was fitted
        # before these labels existed).
        ranker.fusion.protected = ranker.fusion.protected | frozenset(self.new_labels)

    @property
    def pools(self) -> dict[int, list[int]]:
        return self.order

    def _name_vectors(self) -> dict[int, np.ndarray]:
        ids = list(self.new_labels)
        return dict(zip(ids, self.ranker.embed_documents([self.ranker.table.text(i) for i in ids]), strict=True))

    def remember_vectors(self, docs: Sequence[int], vectors: np.ndarray) -> None:
        """Documents' vectors by the served bi-encoder computed elsewhere (e.g. cached on disk): not embedded again."""
        self._vectors.update(zip(docs, np.asarray(vectors, dtype=np.float32), strict=True))

    def doc_vectors(self, docs: Sequence[int]) -> np.ndarray:
        """The bi-encoder's vectors of documents (each embedded once while the encoder stays unchanged)."""
        todo = sorted({d for d in docs if d not in self._vectors})
        if todo:
            self._vectors.update(zip(todo, self.ranker.embed_documents([self.texts[d] for d in todo]), strict=True))
        return np.stack([self._vectors[d] for d in docs]) if docs else np.zeros((0, self.ranker.vectors.shape[1]),
                                                                                dtype=np.float32)

    # --- selection -------------------------------------------------------------------------

    def given_up(self) -> set[int]:
        """Labels no longer asked about: their last ``give_up_after`` answers were all "no"."""
        k = self.cfg.give_up_after
        if k <= 0:
            return set()
        runs: dict[int, int] = {}
        for (_, lab), a in self.answers.items():  # in the order they were given
            runs[lab] = runs.get(lab, 0) + 1 if a == "no" else 0 if a == "yes" else runs.get(lab, 0)
        return {lab for lab, n in runs.items() if n >= k}

    def ranked_pools(self) -> dict[int, list[int]]:
        """Each pool re-ordered by the current model's document-label cosine (the label's prototype).

        Only the first ``rerank_window`` unasked documents of each pool are re-scored (0: all of them).
        """
        window = self.cfg.rerank_window
        unasked = {lid: [d for d in order if (d, lid) not in self.answers] for lid, order in self.order.items()}
        heads = {lid: docs[:window] if window > 0 else docs for lid, docs in unasked.items()}
        docs = sorted({d for head in heads.values() for d in head})
        if not docs:
            return {lid: [] for lid in self.order}
        vecs = self.doc_vectors(docs)
        row = {d: i for i, d in enumerate(docs)}
        for lid, head in heads.items():
            if not head:
                self.order[lid] = []
                continue
            sims = similarities(vecs[[row[d] for d in head]], self.ranker.vectors[self.ranker.table.row(lid)][None])[:, 0]
            self.order[lid] = [head[i] for i in np.argsort(-sims, kind="stable")] + unasked[lid][len(head):]
        return self.order

    def select(self, n: int | None = None) -> list[Question]:
        """The next questions; never one that was asked before, none about a label given up on (while
        another label is still worth asking about)."""
        pools = self.ranked_pools()
        dropped = self.given_up()
        if dropped and any(pools[lab] for lab in pools if lab not in dropped):
            pools = {lab: p for lab, p in pools.items() if lab not in dropped}
        return self.strategy.select(pools, set(self.answers), n or self.cfg.questions_per_iteration, self.rng)

    def record(self, questions: Sequence[Question], answers: Sequence[Answer]) -> None:
        """Keep the answers (and, with ``seen_after``, let each new label's prior follow its confirmed documents)."""
        for q, a in zip(questions, answers, strict=True):
            self.answers[q] = a
        yes = Counter(lab for (_, lab), a in self.answers.items() if a == "yes")
        k = self.cfg.seen_after
        self.ranker.set_frequency({lid: max(self.base_freq, float(yes[lid]) if 0 < k <= yes[lid] else 0.0)
                                   for lid in self.new_labels})

    # --- learning --------------------------------------------------------------------------

    def confirmed(self) -> dict[int, set[int]]:
        """Document id -> the new labels SMEs said "yes" to."""
        out: dict[int, set[int]] = {}
        for (d, lab), a in self.answers.items():
            if a == "yes" and lab in self.new_labels:
                out.setdefault(d, set()).add(lab)
        return out

    def _golds(self, docs: Sequence[int]) -> list[set[int]]:
        """Each document's known labels: its old gold and the new labels confirmed so far (one pass over the answers)."""
        confirmed = self.confirmed()
        return [self.replay_gold.get(d, set()) | confirmed.get(d, set()) for d in docs]

    def _labelled(self) -> list[tuple[int, set[int]]]:
        """Every document with known labels (old gold or confirmed new ones) and those labels, by id."""
        docs = sorted(self.texts)
        return [(d, g) for d, g in zip(docs, self._golds(docs), strict=True) if g]

    def replay_sample(self, n: int) -> list[tuple[int, int]]:
        """``n`` random (document, old gold label) pairs from the whole corpus."""
        return self.rng.sample(self._replay_pairs, min(n, len(self._replay_pairs)))

    def update_prototypes(self) -> None:
        """Each new label's vector: its name's embedding moved towards its confirmed documents and away from
        its rejected ones (Rocchio), normalised; a label without answers keeps its name's embedding."""
        cfg = self.cfg
        by_label: dict[int, dict[str, list[int]]] = {lid: {"yes": [], "no": []} for lid in self.new_labels}
        for (d, lab), a in self.answers.items():
            if lab in by_label and a in ("yes", "no"):
                by_label[lab][a].append(d)
        ids, vecs = [], []
        for lid, got in by_label.items():
            v = cfg.proto_name * self._names[lid]
            if got["yes"]:
                v = v + cfg.proto_yes * self.doc_vectors(got["yes"]).mean(axis=0)
            if got["no"]:
                v = v - cfg.proto_no * self.doc_vectors(got["no"]).mean(axis=0)
            norm = float(np.linalg.norm(v))
            ids.append(lid)
            vecs.append(v / norm if norm > 0 else self._names[lid])
        self.ranker.set_label_vectors(ids, np.stack(vecs))

    def refit_memory(self) -> None:
        """The neighbour memory carries the new labels on exactly the confirmed documents."""
        if self.ranker.memory is None:
            return
        docs = sorted(self.confirmed())
        self.ranker.memory.relabel(set(self.new_labels), self.doc_vectors(docs), self._golds(docs))

    def refit_sparse(self) -> None:
        """The sparse backend learns the answers: a head per campaign label (``sparse_heads``) or its trees retrained
        on every labelled document, the confirmed new labels included."""
        from core.model.sparse import SparseBackend

        if self.ranker.sparse is None or not self.cfg.refit_sparse:
            return
        if self.cfg.sparse_heads:
            confirmed = self.confirmed()
            rejected: dict[int, list[int]] = {}
            for (d, lab), a in self.answers.items():
                if a == "no" and lab in self.new_labels:
                    rejected.setdefault(lab, []).append(d)
            docs = sorted(set(self._background) | set(confirmed) | {d for ds in rejected.values() for d in ds})
            row = {d: r for r, d in enumerate(docs)}
            examples = {}
            for lid in self.new_labels:
                pos = {d for d, labs in confirmed.items() if lid in labs}
                neg = (set(rejected.get(lid, [])) | set(self._background)) - pos
                examples[lid] = ([row[d] for d in sorted(pos)], [row[d] for d in sorted(neg)])
            self.ranker.sparse.fit_heads([self.texts[d] for d in docs], examples, self.cfg.head_c,
                                         self.cfg.head_positive_weight)
            return
        labelled = self._labelled()
        if labelled:
            self.ranker.sparse = SparseBackend.fit([self.texts[d] for d, _ in labelled], [g for _, g in labelled],
                                                   self.ranker.sparse.config)

    def train(self, progress: Progress = no_progress) -> dict[str, Any]:
        """Learn the answers so far: prototypes, neighbour memory, sparse backend (all answers), cross-encoder
        (fresh answers + recalled ones + replay) and, when configured, the bi-encoder."""
        cfg = self.cfg
        fresh = [q for q in self.answers if q not in self.trained and self.answers[q] in ("yes", "no")]
        if not fresh:
            return {"skipped": "no new yes/no answer yet"}
        fresh_pos = [q for q in fresh if self.answers[q] == "yes"]
        fresh_neg = [q for q in fresh if self.answers[q] == "no"]
        earlier = [q for q in self.answers if q in self.trained and self.answers[q] in ("yes", "no")]
        recalled = self.rng.sample(earlier, min(len(earlier), round(len(fresh) * cfg.recall_ratio)))
        positives = fresh_pos + [q for q in recalled if self.answers[q] == "yes"]
        negatives = fresh_neg + [q for q in recalled if self.answers[q] == "no"]
        replay = self.replay_sample(round(len(positives) * cfg.replay_ratio))
        stats: dict[str, Any] = {"positives": len(positives), "negatives": len(negatives), "fresh": len(fresh),
                                 "replay": len(replay), "confirmed": sum(len(v) for v in self.confirmed().values())}
        seconds: dict[str, float] = {}
        clock = time.monotonic()
        tcfg = TrainConfig(epochs=1, batch_size=cfg.train_batch, lr=cfg.lr, cross_lr=cfg.cross_lr, cross_loss="pointwise",
                           max_seq_length=cfg.max_seq_length, warmup_ratio=0.0, seed=self.rng.randrange(10**6))
        label_texts = self.ranker.table.text_map()
        docs = sorted({d for d, _ in positives + negatives + replay})
        index = {d: i for i, d in enumerate(docs)}
        doc_texts = [self.texts[d] for d in docs]
        golds = self._golds(docs)
        if cfg.learn_encoder and positives:
            try:
                stats["bi"] = train_bi_encoder(self.ranker.bi_encoder, doc_texts, golds, label_texts, tcfg,
                                               lambda f, m: progress(0.3 * f, m),
                                               pairs=[(index[d], lab) for d, lab in positives + replay])
            except ModelError as exc:  # e.g. too few compatible pairs to form a batch yet: wait for more answers
                stats["bi"] = {"skipped": str(exc)}
            else:
                self._vectors.clear()
                self.ranker.reindex()
                self._names = self._name_vectors()
            seconds["bi"], clock = time.monotonic() - clock, time.monotonic()
        progress(0.3, "moving the new labels' vectors to their confirmed documents")
        self.update_prototypes()
        self.refit_memory()
        seconds["labels"], clock = time.monotonic() - clock, time.monotonic()
        progress(0.35, "refitting the sparse backend")
        self.refit_sparse()
        seconds["sparse"], clock = time.monotonic() - clock, time.monotonic()
        # Prototypes, memory and sparse backend learned every answer above; the cross-encoder learns the fresh
        # answers it takes (yes, and no when negative answers are used) only when it trains and they fit its cap.
        # A re-ranker the bundle's rule turned off (it added nothing on validation) serves no ranking: it is not
        # trained either (GPL may still use it as a teacher), and every answer is learned by what serves.
        reranks = self.ranker.cross is not None and self.ranker.fusion.rerank != "off"
        if reranks and positives and cfg.cross_check:
            # The fresh answers are held out from the re-ranker as it stands: it trains only where it separates
            # their "yes" from their "no" better than the first stage does (a re-ranker that cannot beat the
            # first stage on the campaign's labels only costs the iteration its time; the guard keeps it from
            # ranking them lower meanwhile).
            stats["cross_check"] = self.cross_check(fresh)
            reranks = stats["cross_check"].get("earns", True)
            seconds["check"], clock = time.monotonic() - clock, time.monotonic()
        wanted = {q for q in fresh if self.answers[q] == "yes" or cfg.use_negative_answers}
        taken: set[Question] = set()
        if reranks and positives:
            examples, taken = self._cross_examples(positives, negatives if cfg.use_negative_answers else [], wanted,
                                                   docs, index, golds)
            stats["cross"] = train_cross_encoder(self.ranker.cross, examples, doc_texts, label_texts, tcfg,
                                                 lambda f, m: progress(0.45 + 0.55 * f, m))
            seconds["cross"] = time.monotonic() - clock
        learned = set(fresh) - (wanted - taken) if reranks else set(fresh)
        self.trained |= learned
        stats["learned"] = len(learned)
        if len(learned) < len(fresh):
            stats["left_for_later"] = len(fresh) - len(learned)
        stats["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
        return stats

    def consolidate(self, progress: Progress = no_progress) -> dict[str, Any]:
        """The bi-encoder learns the campaign, with replay: one pass over every confirmed (document, new label) pair
        and ``consolidate_replay`` old gold pairs per confirmed one; then every label, the neighbour memory (rebuilt
        from every document with known labels) and the new labels' prototypes are embedded again."""
        from core.model.ranker import NeighbourMemory

        cfg = self.cfg
        positives = sorted(q for q, a in self.answers.items() if a == "yes" and q[1] in self.new_labels)
        if not positives or cfg.consolidate_replay <= 0:
            return {"skipped": "no confirmed answer" if not positives else "consolidation is off"}
        started = time.monotonic()
        replay = self.replay_sample(round(len(positives) * cfg.consolidate_replay))
        docs = sorted({d for d, _ in positives + replay})
        index = {d: i for i, d in enumerate(docs)}
        tcfg = TrainConfig(epochs=1, batch_size=32, lr=cfg.lr, max_seq_length=cfg.max_seq_length, warmup_ratio=0.1,
                           seed=self.rng.randrange(10**6))
        stats: dict[str, Any] = {"positives": len(positives), "replay": len(replay)}
        try:
            stats["bi"] = train_bi_encoder(self.ranker.bi_encoder, [self.texts[d] for d in docs], self._golds(docs),
                                           self.ranker.table.text_map(), tcfg, lambda f, m: progress(0.5 * f, m),
                                           pairs=[(index[d], lab) for d, lab in positives + replay])
        except ModelError as exc:  # e.g. too few compatible pairs for a batch
            return {"skipped": str(exc)}
        self._vectors.clear()
        progress(0.5, f"embedding {len(self.ranker.table):,} labels with the consolidated bi-encoder")
        self.ranker.reindex()
        self._names = self._name_vectors()
        if self.ranker.memory is not None:
            labelled = self._labelled()
            progress(0.7, f"embedding the neighbour memory's {len(labelled):,} documents")
            self.ranker.memory = NeighbourMemory(self.doc_vectors([d for d, _ in labelled]),
                                                 [sorted(g) for _, g in labelled])
        self.update_prototypes()
        self.refit_sparse()  # answers given since the last iteration are learned by every part
        self.trained |= {q for q, a in self.answers.items() if a in ("yes", "no")}
        stats["seconds"] = round(time.monotonic() - started, 1)
        return stats

    def cross_check(self, questions: Sequence[Question]) -> dict[str, Any]:
        """Whether the re-ranker, as it stands, separates the answers to ``questions`` ("yes" against "no") better
        than the first stage: the ROC AUC of its logits and of the first-stage scores (a label outside a document's
        candidates scores lowest). Empty when the answers are not both "yes" and "no"."""
        from sklearn.metrics import roc_auc_score

        answered = [q for q in questions if self.answers.get(q) in ("yes", "no")]
        target = [self.answers[q] == "yes" for q in answered]
        if all(target) or not any(target):
            return {}
        docs = sorted({d for d, _ in answered})
        row = {d: r for r, d in enumerate(docs)}
        sets = self.ranker.candidate_sets([self.texts[d] for d in docs], self.doc_vectors(docs))
        scores = [self.ranker.fusion.first_stage(c) for c in sets]
        first = []
        for d, lab in answered:
            at = np.flatnonzero(sets[row[d]].ids == lab)
            first.append(float(scores[row[d]][at[0]]) if len(at) else -1e9)
        cross = self.ranker.cross.logits_np([self.ranker.table.text(lab) for _, lab in answered],
                                            [self.texts[d] for d, _ in answered])
        out = {"answers": len(answered), "first_auc": round(float(roc_auc_score(target, first)), 4),
               "cross_auc": round(float(roc_auc_score(target, cross)), 4)}
        out["earns"] = out["cross_auc"] > out["first_auc"]
        return out

    def _cross_examples(self, positives: list[Question], negatives: list[Question], fresh: set[Question],
                        docs: list[int], index: dict[int, int], golds: list[set[int]],
                        ) -> tuple[list[tuple[int, int, float]], set[Question]]:
        """The cross-encoder's examples (at most ``cross_examples``; the fresh answers first, then the recalled
        answers, first-stage negatives and replay) and the fresh answers among them."""
        cfg = self.cfg
        answered = [(q, (index[q[0]], q[1], 1.0)) for q in positives] + [(q, (index[q[0]], q[1], 0.0)) for q in negatives]
        first = [a for a in answered if a[0] in fresh]
        extra = [t for q, t in answered if q not in fresh]
        # Random negatives from the current first stage's top labels (never a known gold label).
        if cfg.cross_negatives:
            pos_docs = [d for d, _ in positives]
            cand, _ = self.ranker.candidates([self.texts[d] for d in pos_docs], n=cfg.cross_top_k,
                                             doc_vectors=self.doc_vectors(pos_docs))
            for d, row in zip(pos_docs, cand, strict=True):
                pool = [int(c) for c in row if c >= 0 and int(c) not in golds[index[d]]]
                extra += [(index[d], c, 0.0) for c in self.rng.sample(pool, min(cfg.cross_negatives, len(pool)))]
        # A little replay keeps the cross-encoder's old labels from fading.
        replay_docs = [d for d in docs if self.replay_gold.get(d)][: cfg.cross_replay_docs]
        for d in replay_docs:
            extra.append((index[d], self.rng.choice(sorted(self.replay_gold[d])), 1.0))
        self.rng.shuffle(first)
        self.rng.shuffle(extra)
        first.sort(key=lambda a: a[1][2] == 0.0)  # a fresh "yes" leads: the loss needs a positive
        cap = cfg.cross_examples if cfg.cross_examples > 0 else len(first) + len(extra)
        room = cap
        if not any(t[2] > 0 for _, t in first):  # only "no" among the fresh answers: a place for an earlier "yes"
            at = next((i for i, t in enumerate(extra) if t[2] > 0), None)
            if at is not None:
                extra.insert(0, extra.pop(at))
                room = cap - 1
        first = first[:room]
        out = [t for _, t in first] + extra[: cap - len(first)]
        self.rng.shuffle(out)
        return out, {q for q, _ in first}

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
