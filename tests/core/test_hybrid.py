"""The hybrid ranking model's parts: the sparse backend, the neighbour memory, candidate features and the fusion."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest

from core.data.concepts import LabelRow
from core.errors import ModelError
from core.model.bicross import Validation, fit_first_stage, fit_rerank_rule, make_label_table, top_k_agreement
from core.model.encoders import load_bi_encoder
from core.model.fusion import FEATURES, Blend, Candidates, Fusion, LearnedRanker, margin
from core.model.labels import Prediction
from core.model.loading import load_ranker
from core.model.ranker import BiCrossRanker, NeighbourMemory
from core.model.sparse import SparseBackend, SparseConfig
from core.model.versions import write_bundle

# Label 7 ("Humans") has no useful name: only the word "patients" predicts it, as MeSH's check tags.
WORDS = {1: "infarction angioplasty troponin", 2: "mammography tumour screening", 3: "insulin glucose glycaemic",
         7: "patients"}


def corpus(n: int, seed: int = 0) -> tuple[list[str], list[set[int]]]:
    rng = random.Random(seed)
    texts, gold = [], []
    for _ in range(n):
        labels = set(rng.sample([1, 2, 3], rng.choice([1, 2])))
        if rng.random() < 0.5:
            labels.add(7)
        words = [w for lab in sorted(labels) for w in WORDS[lab].split()] + ["study", "results", "cohort"]
        rng.shuffle(words)
        texts.append(" ".join(words))
        gold.append(labels)
    return texts, gold


def test_the_sparse_backend_learns_which_words_predict_a_label_whatever_its_name():
    texts, gold = corpus(80)
    backend = SparseBackend.fit(texts, gold, SparseConfig(cluster_k=2, n_trees=1))
    [humans, no_humans] = backend.predict(["patients given insulin and glucose", "insulin and glucose"], k=4)
    assert max(humans, key=humans.get) in (3, 7) and humans[7] > 0.5
    assert no_humans.get(7, 0.0) < humans[7]
    assert backend.knows() == {1, 2, 3, 7}
    # Only labels it was trained on ever come back.
    assert set(humans) <= {1, 2, 3, 7}


def test_the_sparse_backend_round_trips_through_a_folder(tmp_path):
    texts, gold = corpus(40)
    backend = SparseBackend.fit(texts, gold, SparseConfig(cluster_k=2, n_trees=1))
    backend.save(tmp_path / "sparse")
    again = SparseBackend.load(tmp_path / "sparse")
    probe = ["troponin after angioplasty in patients"]
    [a], [b] = again.predict(probe, 3), backend.predict(probe, 3)
    assert a == pytest.approx(b) and a


def test_the_sparse_backend_refuses_documents_without_labels():
    with pytest.raises(ModelError, match="at least one document with a gold label"):
        SparseBackend.fit(["a", "b"], [set(), set()])


def test_a_head_learns_a_new_label_from_answers_without_refitting_the_trees(tmp_path):
    texts, gold = corpus(60)
    backend = SparseBackend.fit(texts, gold, SparseConfig(cluster_k=2, n_trees=1))
    trees = backend.model
    # Label 50 is new; SMEs said "yes" to the records about screening, "no" to the others (words the trees know).
    pos = [i for i, t in enumerate(texts) if "screening" in t]
    neg = [i for i, t in enumerate(texts) if "screening" not in t]
    stats = backend.fit_heads(texts, {50: (pos, neg), 51: ([0], [])})
    assert stats["heads"] == 1 and backend.model is trees  # 51 has no negative: no head; the trees stay
    [yes, no] = backend.predict(["mammography screening in patients", "insulin and glucose"], k=5)
    assert yes[50] > 0.5 > no.get(50, 0.0) and 51 not in yes
    assert len(yes) <= 5 and 2 in yes  # the trees' hits stay beside the head's
    # A head asked for by name is scored on every text, in its top k or not (scores among a set of labels).
    [top1] = backend.predict(["insulin and glucose"], k=1)
    [asked] = backend.predict(["insulin and glucose"], k=1, always=np.array([50, 51]))
    assert 50 not in top1 and asked[50] == pytest.approx(no.get(50, asked[50])) and asked[50] < 0.5
    assert set(asked) == set(top1) | {50}  # 51 has no head: nothing to score
    backend.save(tmp_path / "sparse")
    again = SparseBackend.load(tmp_path / "sparse")
    probe = ["tumour screening"]
    assert again.predict(probe, 5)[0][50] == pytest.approx(backend.predict(probe, 5)[0][50])
    # Refitting one label's head keeps the others'; a label that loses its negatives loses its head.
    backend.fit_heads(texts, {52: (pos[:4], neg)})
    assert set(backend.heads.label_ids.tolist()) == {50, 52}
    backend.fit_heads(texts, {50: (pos, [])})
    assert set(backend.heads.label_ids.tolist()) == {52} and 50 not in backend.knows()


def test_the_memory_finds_the_rows_documents_repeat_a_block_at_a_time():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(600, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    memory = NeighbourMemory(vectors, [[1] for _ in range(600)])
    fresh = rng.normal(size=(2, 8)).astype(np.float32)
    fresh /= np.linalg.norm(fresh, axis=1, keepdims=True)
    docs = np.vstack([vectors[[3, 299, 598]], fresh])  # three held rows (across blocks of 256), two new documents
    memory.relabel({9}, docs, [{9}] * 5)
    assert [memory.labels[r] for r in (3, 299, 598)] == [[1, 9]] * 3
    assert len(memory) == 602 and memory.labels[600:] == [[9], [9]]
    memory.relabel({9}, docs[:1], [{9}])  # idempotent: the same answers give the same memory
    assert memory.labels[299] == [1] and memory.labels[3] == [1, 9] and len(memory) == 602


def test_neighbour_scores_are_the_similarity_weighted_share_of_neighbours_carrying_a_label():
    memory = NeighbourMemory(np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32), [[1, 2], [2], [3]])
    [scores] = memory.scores(np.array([[1.0, 0.0]], dtype=np.float32), k=2)
    # Neighbours: doc 0 (sim 1.0) and doc 1 (sim 0.6); label 2 is on both, label 1 on the first only.
    assert scores == pytest.approx({1: 1.0 / 1.6, 2: 1.0})
    assert 3 not in scores


def test_the_learned_ranker_learns_from_features_and_never_lowers_a_candidate_for_a_higher_cosine():
    rng = np.random.default_rng(0)
    groups, targets = [], []
    for _ in range(60):
        x = rng.random((20, len(FEATURES))).astype(np.float32)
        y = (x[:, FEATURES.index("sparse")] + 0.3 * x[:, FEATURES.index("cosine")] > 0.9).astype(np.float32)
        groups.append(x)
        targets.append(y)
    model = LearnedRanker.fit(groups, targets, FEATURES, rounds=60)
    probe = rng.random((200, len(FEATURES))).astype(np.float32)
    high = probe.copy()
    high[:, FEATURES.index("cosine")] += 0.5
    assert (model.score(high) >= model.score(probe) - 1e-6).all()  # monotone in the cosine
    low_sparse, high_sparse = probe.copy(), probe.copy()
    low_sparse[:, FEATURES.index("sparse")] = 0.0
    high_sparse[:, FEATURES.index("sparse")] = 1.0
    assert model.score(high_sparse).mean() > model.score(low_sparse).mean()
    contrib = model.contributions(probe[:3])
    assert contrib.shape == (3, len(FEATURES) + 1)
    assert contrib.sum(axis=1) == pytest.approx(model.score(probe[:3]), abs=1e-4)  # SHAP values add up to the score


def test_the_blend_combines_the_first_stage_and_the_cross_encoder_as_documented():
    c = Candidates(np.array([5, 6]), np.zeros((2, len(FEATURES)), dtype=np.float32))
    c.features[:, FEATURES.index("cosine")] = [0.5, 0.2]
    c.features[:, FEATURES.index("prior")] = [0.0, 1.0]
    c.features[:, FEATURES.index("sparse")] = [0.0, 0.5]
    blend = Blend(prior_weight=0.4, lexical_weight=0.0, sparse_weight=0.2, bi_weight=0.25)
    first = blend.first_stage(c)
    assert first == pytest.approx([0.6 * 0.5, 0.6 * 0.2 + 0.4 + 0.2 * 0.5])
    assert Fusion(blend).final(c, first, np.array([0.0, 0.0])) == pytest.approx(0.75 * 0.5 + 0.25 * first)


LABELS = [LabelRow(1, "mi", "Myocardial Infarction"), LabelRow(2, "bc", "Breast Neoplasms"),
          LabelRow(3, "dm", "Diabetes Mellitus"), LabelRow(7, "hu", "Humans"), LabelRow(9, "as", "Asthma")]


@pytest.fixture(scope="module")
def hybrid(encoder_path):
    texts, gold = corpus(70, seed=1)
    ranker = BiCrossRanker.build(load_bi_encoder(encoder_path, "cpu", 64), make_label_table(LABELS, gold[:60]),
                                 fusion=Fusion(sparse_candidates=5, neighbours=5, candidates=4))
    ranker.sparse = SparseBackend.fit(texts[:60], gold[:60], SparseConfig(cluster_k=2, n_trees=1))
    ranker.memory = NeighbourMemory(ranker.embed_documents(texts[:60]), [sorted(g) for g in gold[:60]])
    return ranker, texts, gold


def test_every_source_adds_its_candidates_with_their_features(hybrid):
    ranker, _, _ = hybrid
    [c] = ranker.candidate_sets(["Asthma patients on insulin"])
    assert {3, 7, 9} <= set(c.ids.tolist())
    row = {int(i): r for r, i in enumerate(c.ids)}
    assert c.column("lexical")[row[9]] == 1.0 and c.column("lexical")[row[7]] == 0.0  # "Asthma" is named
    assert c.column("sparse")[row[7]] > 0.5  # "patients" -> Humans, learned by the sparse backend
    assert c.column("seen")[row[9]] == 0.0 and c.column("seen")[row[7]] == 1.0  # asthma has no training document
    assert c.column("cosine_gap").max() == pytest.approx(0.0)


def test_scores_among_labels_are_the_first_stage_scores_of_exactly_those_labels(hybrid):
    ranker, _, _ = hybrid
    text = ["troponin after angioplasty in patients"]
    [served] = ranker.rank(text, k=5, rerank=False)
    ids = [p.label_id for p in served][:3]
    scores = ranker.scores_among(text, [*ids, 9])[0]
    # Labels the served ranking holds keep its scores (and so its order); a label outside it is scored too.
    assert scores[:3] == pytest.approx([p.score for p in served][:3], abs=1e-5)
    assert np.isfinite(scores[3])
    ranker.remove_labels([9])
    try:
        assert ranker.scores_among(text, [9])[0, 0] == -np.inf
    finally:
        ranker._removed.discard(9)
        ranker.index.add(np.array([9]), ranker.vectors[[ranker.table.row(9)]])
        ranker._refresh_frequent()


def test_a_label_the_sparse_backend_never_saw_is_still_served_by_the_dense_and_name_sources(hybrid):
    ranker, _, _ = hybrid
    ranker.add_labels([11], ["Bronchiolitis"], ["br"])
    try:
        [c] = ranker.candidate_sets(["Bronchiolitis in infants"])
        assert 11 in c.ids.tolist() and 11 not in ranker.sparse.knows()
        assert ranker.rank(["Bronchiolitis in infants"], k=2)[0][0].label_id == 11
    finally:
        ranker.remove_labels([11])


def test_the_learned_first_stage_beats_cosine_alone_on_held_out_documents_and_survives_a_bundle(hybrid, tmp_path):
    ranker, texts, gold = hybrid
    stats = fit_first_stage(ranker, Validation(texts[:60], gold[:60]), "learned")
    assert stats["fusion"] == "learned" and ranker.fusion.learned
    from core.model.metrics import evaluate

    held = texts[60:], gold[60:]
    learned = [[p.label_id for p in r] for r in ranker.rank(held[0], k=3)]
    cosine = [[int(i) for i in c.ids[np.argsort(-c.column("cosine"))]] for c in ranker.candidate_sets(held[0])]
    assert evaluate(learned, held[1], ("R@3",))["R@3"] > evaluate(cosine, held[1], ("R@3",))["R@3"]
    bundle = write_bundle(tmp_path, 1, "bicross", ranker.save)
    loaded = load_ranker(bundle, "cpu")
    assert [[p.label_id for p in r] for r in loaded.rank(held[0], k=3)] == learned
    explained = loaded.explain(held[0][0], k=3)
    assert [e["label_id"] for e in explained] == learned[0]
    assert set(explained[0]["contributions"]) == {*FEATURES, "bias"}
    assert sum(explained[0]["contributions"].values()) == pytest.approx(explained[0]["score"], abs=1e-4)


def test_too_few_validation_documents_fall_back_to_the_tuned_blend(hybrid):
    ranker, texts, gold = hybrid
    first = ranker.fusion.first
    try:
        stats = fit_first_stage(ranker, Validation(texts[:10], gold[:10]), "learned")
        assert stats["fusion"] == "blend" and not ranker.fusion.learned
        assert 0.0 <= stats["prior_weight"] <= 0.5
    finally:
        ranker.fusion.first = first


def test_top_k_agreement_counts_shared_labels():
    a = [[Prediction(i, 1.0, 1.0) for i in (1, 2, 3)]]
    b = [[Prediction(i, 1.0, 1.0) for i in (3, 2, 9)]]
    assert top_k_agreement(a, b, k=3) == pytest.approx(2 / 3)


class ScriptedCross:
    """A cross-encoder written as code: logits that disagree with the first stage (the reverse of its order)."""

    max_length = 64

    def logits_np(self, label_texts, doc_texts, batch_size=64):
        return np.linspace(-4.0, 4.0, len(label_texts), dtype=np.float32)


def assert_one_scale(ranker, texts, ks=range(1, 101)):
    """Scores never rise down a ranking, and a smaller k's ranking is the start of a larger one's."""
    full = ranker.rank(texts, k=max(ks))
    for k in ks:
        got = ranker.rank(texts, k=k)
        for ranking, whole in zip(got, full, strict=True):
            scores = [p.score for p in ranking]
            assert all(a >= b for a, b in itertools.pairwise(scores)), (k, scores)
            assert [p.label_id for p in ranking] == [p.label_id for p in whole[:k]]
    return full


def test_a_ranking_longer_than_the_cross_encoders_shortlist_keeps_one_score_scale(hybrid):
    ranker, texts, _ = hybrid
    ranker.add_labels(list(range(20, 60)), [f"Topic number {i}" for i in range(20, 60)], [f"t{i}" for i in range(20, 60)])
    cross, ranker.cross = ranker.cross, ScriptedCross()
    try:
        full = assert_one_scale(ranker, texts[60:63], ks=(1, 3, 4, 5, 10, 30, 45, 100))
        assert all(len(r) > ranker.fusion.candidates for r in full)  # the tail below the re-ranked head is there
        # Below the head, labels keep the first stage's order and its score differences.
        n = ranker.fusion.candidates
        tail = full[0][n:]
        assert [p.score - tail[0].score for p in tail] == pytest.approx([p.bi_score - tail[0].bi_score for p in tail])
    finally:
        ranker.cross = cross
        ranker.remove_labels(list(range(20, 60)))


def test_every_monotone_feature_only_raises_the_learned_score():
    from core.model.fusion import CROSS_FEATURES, MONOTONE

    rng = np.random.default_rng(1)
    groups, targets = [], []
    for _ in range(60):
        x = rng.random((20, len(CROSS_FEATURES))).astype(np.float32)
        groups.append(x)
        targets.append((x @ rng.random(len(CROSS_FEATURES)) > 2.5).astype(np.float32))
    model = LearnedRanker.fit(groups, targets, CROSS_FEATURES, rounds=60)
    probe = rng.random((300, len(CROSS_FEATURES))).astype(np.float32)
    rising = [f for f in CROSS_FEATURES if MONOTONE[f] == 1]
    assert {"cosine", "lexical", "sparse", "neighbours", "first_stage", "cross"} <= set(rising)
    for f in rising:
        for step in (0.05, 0.3, 1.0):
            higher = probe.copy()
            higher[:, CROSS_FEATURES.index(f)] += step
            assert (model.score(higher) >= model.score(probe) - 1e-6).all(), f"{f} +{step} lowered a score"


@pytest.mark.slow
def test_a_trained_bundle_keeps_one_score_scale_in_every_runtime(encoder_path, tmp_path, monkeypatch):
    import random as stdlib_random

    from core.model.bicross import fit_second_stage
    from core.model.training import CrossScorer, TrainConfig, cross_examples, train_cross_encoder

    texts, gold = corpus(135, seed=2)
    labels = LABELS + [LabelRow(i, f"t{i}", f"Topic number {i}") for i in range(20, 60)]
    ranker = BiCrossRanker.build(load_bi_encoder(encoder_path, "cpu", 64), make_label_table(labels, gold[:60]),
                                 fusion=Fusion(sparse_candidates=5, neighbours=5, candidates=4))
    ranker.sparse = SparseBackend.fit(texts[:60], gold[:60], SparseConfig(cluster_k=2, n_trees=1))
    ranker.memory = NeighbourMemory(ranker.embed_documents(texts[:60]), [sorted(g) for g in gold[:60]])
    validation = Validation(texts[60:130], gold[60:130])
    fit_first_stage(ranker, validation, "learned")
    cross = CrossScorer(encoder_path, "cpu", 64)
    cand, _ = ranker.candidates(texts[:60], n=10)
    cfg = TrainConfig(batch_size=16, cross_negatives=2, cross_max_length=64, cross_lr=1e-4, cross_loss="pointwise")
    train_cross_encoder(cross, cross_examples(gold[:60], [list(r) for r in cand], cfg, stdlib_random.Random(0)),
                        texts[:60], ranker.table.text_map(), cfg)
    ranker.cross = cross
    fit_second_stage(ranker, validation)
    assert ranker.fusion.learned and ranker.fusion.second is not None
    ranker.fusion.rerank = "all"  # whatever the rule decided on these few documents: every ranking re-ranked here
    bundle = write_bundle(tmp_path, 1, "bicross", ranker.save)
    for runtime in ("torch", "onnx", "onnx-int8"):
        monkeypatch.setenv("XMTC_CROSS_RUNTIME", runtime)
        loaded = load_ranker(bundle, "cpu")
        assert loaded.cross.runtime == runtime
        full = assert_one_scale(loaded, texts[130:], ks=(1, 4, 5, 10, 30, 44, 100))
        assert all(len(r) > 4 for r in full)
        # Whatever the two stages' scales are (here the second stage's scores far below the first's), one ranking.
        second = loaded.fusion.second.score
        loaded.fusion.second.score = lambda x, second=second: second(x) - 100.0
        assert_one_scale(loaded, texts[130:], ks=(4, 5, 44))


class CountingCross(ScriptedCross):
    """The scripted cross-encoder, counting the documents it reads."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def logits_np(self, label_texts, doc_texts, batch_size=64):
        self.read += [d for d in dict.fromkeys(doc_texts)]
        return super().logits_np(label_texts, doc_texts, batch_size)


def shortlists(n_docs: int, sure: int, seed: int = 0):
    """Validation shortlists of 10 labels: the first ``sure`` documents have a wide first-stage margin and their gold
    label first; the others a narrow margin and their gold label last, where a second stage that reads the
    document (scores the gold label highest) finds it."""
    rng = np.random.default_rng(seed)
    heads, firsts, seconds, gold = [], [], [], []
    for d in range(n_docs):
        ids = np.arange(100 * d, 100 * d + 10, dtype=np.int64)
        spread = 5.0 if d < sure else 0.01
        first = np.linspace(spread, 0.0, 10, dtype=np.float32) + rng.uniform(0, 1e-3)
        heads.append(Candidates(ids, np.zeros((10, len(FEATURES)), dtype=np.float32)))
        firsts.append(first)
        g = int(ids[0] if d < sure else ids[-1])
        second = np.zeros(10, dtype=np.float32)
        second[list(ids).index(g)] = 1.0
        seconds.append(second)
        gold.append({g})
    return heads, firsts, seconds, gold


def test_the_rerank_rule_re_ranks_only_where_the_first_stage_is_unsure_and_where_that_pays():
    heads, firsts, seconds, gold = shortlists(100, sure=70)
    fusion = Fusion()
    stats = fit_rerank_rule(fusion, heads, firsts, seconds, gold)
    # The 30 unsure documents gain, the 70 sure ones neither gain nor lose: the smallest share with the whole gain.
    assert fusion.rerank == "cascade" and fusion.rerank_share == pytest.approx(0.3)
    assert fusion.rerank_gain == pytest.approx(stats["rerank_gains"]["1.0"], abs=1e-3) and fusion.rerank_gain > 0.1
    assert all(fusion.unsure(f) for f in firsts[70:]) and not any(fusion.unsure(f) for f in firsts[:70])
    # A second stage that puts every gold label last only loses: the first stage serves alone.
    worse = [np.where(s > 0, 0.0, 1.0).astype(np.float32) for s in seconds]
    off = Fusion()
    assert fit_rerank_rule(off, heads, firsts, worse, gold)["rerank_rule"] == "off"
    assert not any(off.unsure(f) for f in firsts)
    # Where every document gains, every document is re-ranked.
    every = Fusion()
    assert fit_rerank_rule(every, *shortlists(100, sure=0))["rerank_rule"] == "all"
    assert every.unsure(firsts[0])


def test_the_ranker_follows_the_rule_and_a_bundle_keeps_it(hybrid, tmp_path):
    ranker, texts, _ = hybrid
    docs = texts[60:70]
    cross, ranker.cross = ranker.cross, CountingCross()
    fusion = ranker.fusion
    try:
        margins = [margin(first) for _, first in ranker.shortlist(docs)]
        ranker.fusion.rerank, ranker.fusion.rerank_margin = "cascade", float(np.median(margins))
        ranker.rank(docs, k=3)
        unsure = {t for t, m in zip(docs, margins, strict=True) if m < ranker.fusion.rerank_margin}
        assert set(ranker.cross.read) == unsure and 0 < len(unsure) < len(docs)
        ranked = ranker.rank(docs, k=3)
        first_only = ranker.rank(docs, k=3, rerank=False)
        for t, r, f in zip(docs, ranked, first_only, strict=True):
            if t not in unsure:  # a document the first stage is sure of keeps its ranking and its scores
                assert [(p.label_id, p.score) for p in r] == [(p.label_id, p.score) for p in f]
            else:  # the scripted cross-encoder reverses the head it reads
                assert r[0].cross_score is not None
        ranker.cross.read.clear()
        ranker.rank(docs, k=3, every=True)
        assert set(ranker.cross.read) == set(docs)
        ranker.fusion.rerank = "off"
        ranker.cross.read.clear()
        assert [[p.label_id for p in r] for r in ranker.rank(docs, k=3)] == \
            [[p.label_id for p in r] for r in first_only] and not ranker.cross.read
        ranker.fusion.rerank, ranker.fusion.rerank_gain, ranker.fusion.rerank_share = "cascade", 0.012, 0.5
        ranker.cross = cross
        loaded = load_ranker(write_bundle(tmp_path, 1, "bicross", ranker.save), "cpu").fusion
        assert (loaded.rerank, loaded.rerank_margin, loaded.rerank_gain, loaded.rerank_share) == \
            ("cascade", pytest.approx(ranker.fusion.rerank_margin), 0.012, 0.5)
    finally:
        ranker.cross = cross
        ranker.fusion = fusion
        fusion.rerank, fusion.rerank_margin, fusion.rerank_gain, fusion.rerank_share = "all", float("inf"), None, None


def test_a_bundle_written_before_the_rule_re_ranks_every_document():
    entry = Fusion().to_json()
    del entry["rerank"]
    loaded = Fusion.load(Path("/nonexistent"), entry)
    assert loaded.rerank == "all" and loaded.unsure(np.zeros(10, dtype=np.float32))


def test_a_protected_label_is_never_ranked_lower_by_the_re_ranker_than_by_the_first_stage(hybrid, tmp_path):
    ranker, texts, _ = hybrid
    docs = texts[60:66]
    cross, ranker.cross = ranker.cross, ScriptedCross()  # reverses each head: the first stage's best goes last
    try:
        first = ranker.rank(docs, k=4, rerank=False)
        plain = ranker.rank(docs, k=4, every=True)
        assert [p.label_id for p in plain[0]] != [p.label_id for p in first[0]]
        top = {r[0].label_id for r in first}  # each document's first-stage best, now protected
        ranker.fusion.protected = frozenset(top)
        guarded = assert_one_scale(ranker, docs, ks=(1, 2, 4, 10))  # scores still fall down each list
        for f, g, p in zip(first, guarded, plain, strict=True):
            place = {q.label_id: r for r, q in enumerate(g)}
            for r, q in enumerate(f[:4]):
                if q.label_id in top:  # a protected label keeps at least its first-stage place ...
                    assert place[q.label_id] <= r
            unprotected = [q.label_id for q in p[:4] if q.label_id not in top]
            assert [q.label_id for q in g[:4] if q.label_id not in top] == unprotected  # ... the rest keep their order
        # The Model page's "try" explains what is served: guarded, and the first stage alone where the rule is off.
        for t, g in zip(docs, guarded, strict=True):
            assert [e["label_id"] for e in ranker.explain(t, k=4)] == [q.label_id for q in g[:4]]
        ranker.fusion.rerank = "off"
        for t, f in zip(docs, first, strict=True):
            assert [e["label_id"] for e in ranker.explain(t, k=4)] == [q.label_id for q in f[:4]]
        ranker.cross = cross
        loaded = load_ranker(write_bundle(tmp_path, 1, "bicross", ranker.save), "cpu").fusion
        assert loaded.protected == frozenset(top)
    finally:
        ranker.cross = cross
        ranker.fusion.protected, ranker.fusion.rerank = frozenset(), "all"
