"""The active-learning cycle on a tiny real corpus with the bundled model."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.concepts import LabelRow
from core.errors import XmtcError
from core.model.bicross import make_label_table
from core.model.encoders import load_bi_encoder
from core.model.ranker import BiCrossRanker
from core.model.training import CrossScorer
from core.newlabels.active_learning import ActiveLearningCycle, ALConfig
from core.newlabels.oracle import SimulatedOracle

OLD = [LabelRow(1, "mi", "Myocardial Infarction"), LabelRow(2, "bc", "Breast Neoplasms"), LabelRow(3, "hu", "Humans")]
TEXTS = {
    10: "Pancreatic cancer resection outcomes in older adults.",
    11: "Acute myocardial infarction and early angioplasty.",
    12: "Screening mammography for breast cancer.",
    13: "Chemotherapy for advanced pancreatic adenocarcinoma.",
    14: "Heart attack survivors after cardiac rehabilitation.",
    15: "Pancreatic neoplasms detected by endoscopic ultrasound.",
}
OLD_GOLD = {10: {3}, 11: {1}, 12: {2, 3}, 13: set(), 14: {1}, 15: {3}}
NEW = {100: "Pancreatic Neoplasms"}
NEW_GOLD = {10: {100}, 11: set(), 12: set(), 13: {100}, 14: set(), 15: {100}}


@pytest.fixture
def ranker(encoder_path):
    bi = load_bi_encoder(encoder_path, "cpu", 64)
    return BiCrossRanker.build(bi, make_label_table(OLD, list(OLD_GOLD.values())),
                               cross=CrossScorer(encoder_path, "cpu", 64))


def cycle(ranker, **overrides):
    overrides.setdefault("cross_check", False)  # the cross-encoder (a random head here) always trains
    cfg = ALConfig(questions_per_iteration=3, train_batch=4, **overrides)
    return ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, NEW, {100: sorted(TEXTS)}, cfg)


def test_new_labels_are_served_before_any_training(ranker):
    cycle(ranker)
    top = ranker.rank(["Pancreatic neoplasms and pancreatic cancer surgery"], k=2, rerank=False)[0]
    assert 100 in [p.label_id for p in top]


def test_two_iterations_change_the_model_record_metrics_and_never_repeat_a_question(ranker):
    al = cycle(ranker)
    before_doc = ranker.embed_documents([TEXTS[10]])
    before_label = ranker.vectors[ranker.table.row(100)].copy()
    calls = []

    def evaluate(r, iteration):
        calls.append(iteration)
        return {"score": float(len(calls))}

    history = al.run(SimulatedOracle(NEW_GOLD), iterations=2, evaluate=evaluate)
    assert [h.number for h in history] == [0, 1, 2]
    assert [h.metrics["score"] for h in history] == [1.0, 2.0, 3.0] and calls == [0, 1, 2]
    assert sum(h.asked for h in history) == 6 == len(al.answers)  # 6 distinct questions
    assert al.answers_per_label() == {100: 6}
    # By default the answers move the new label, not the shared encoder (old labels keep their vectors).
    assert not np.allclose(before_label, ranker.vectors[ranker.table.row(100)], atol=1e-4)
    assert np.allclose(before_doc, ranker.embed_documents([TEXTS[10]]), atol=1e-5)
    assert "bi" not in history[1].train and history[1].train["cross"]["steps"] >= 1


def test_the_encoder_learns_the_answers_when_configured(ranker):
    al = cycle(ranker, learn_encoder=True)
    before = ranker.embed_documents([TEXTS[10]])
    al.record([(10, 100), (13, 100), (11, 100)], ["yes", "yes", "no"])
    stats = al.train()
    assert stats["bi"]["steps"] >= 1
    assert not np.allclose(before, ranker.embed_documents([TEXTS[10]]), atol=1e-5)


def test_a_prototype_is_the_name_moved_towards_yes_and_away_from_no(ranker):
    al = cycle(ranker, proto_name=1.0, proto_yes=0.75, proto_no=0.15)
    name = ranker.embed_documents([NEW[100]])[0]
    assert np.allclose(ranker.vectors[ranker.table.row(100)], name, atol=1e-5)  # no answer: the name itself
    al.record([(10, 100), (13, 100), (11, 100), (12, 100)], ["yes", "yes", "no", "unsure"])
    al.update_prototypes()
    yes, no = ranker.embed_documents([TEXTS[10], TEXTS[13]]), ranker.embed_documents([TEXTS[11]])
    expected = name + 0.75 * yes.mean(axis=0) - 0.15 * no.mean(axis=0)
    got = ranker.vectors[ranker.table.row(100)]
    assert np.allclose(got, expected / np.linalg.norm(expected), atol=1e-5)
    # The index serves the prototype: a confirmed document now finds the label nearer than its name did.
    assert float(yes[0] @ got) > float(yes[0] @ name)
    assert 100 in ranker.index.search(yes[:1], 3)[0][0]


def test_rebuilding_from_the_same_answers_gives_the_same_model(ranker):
    al = cycle(ranker)
    al.record([(10, 100), (11, 100), (13, 100)], ["yes", "no", "yes"])
    al.update_prototypes()
    first = ranker.vectors[ranker.table.row(100)].copy()
    again = ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, NEW, {100: sorted(TEXTS)}, al.cfg, resume=True)
    again.answers = dict(al.answers)
    again.update_prototypes()
    assert np.allclose(first, ranker.vectors[ranker.table.row(100)], atol=1e-6)


@pytest.mark.parametrize("heads", [True, False])
def test_the_memory_and_the_sparse_backend_learn_every_confirmed_document(ranker, heads):
    from core.model.ranker import NeighbourMemory
    from core.model.sparse import SparseBackend, SparseConfig

    known = [10, 11, 12, 14]
    ranker.memory = NeighbourMemory(ranker.embed_documents([TEXTS[d] for d in known]),
                                    [sorted(OLD_GOLD[d]) for d in known])
    ranker.sparse = SparseBackend.fit([TEXTS[d] for d in known], [OLD_GOLD[d] for d in known],
                                      SparseConfig(min_df=1, cluster_k=2, n_trees=1))
    trees = ranker.sparse.model
    al = cycle(ranker, cross_negatives=0, sparse_heads=heads)
    al.record([(10, 100), (13, 100), (11, 100)], ["yes", "yes", "no"])
    al.train()
    # Document 10 was in the memory: its row gains the label; 13 was not: a row is added with its gold.
    assert len(ranker.memory) == 5 and ranker.memory.labels[0] == [3, 100] and ranker.memory.labels[4] == [100]
    assert all(100 not in ranker.memory.labels[r] for r in (1, 2, 3))
    if heads:  # a head over the trees' features, fitted on the answers; the trees are not refit
        assert ranker.sparse.model is trees and ranker.sparse.heads.label_ids.tolist() == [100]
        [pancreas, heart] = ranker.sparse.predict([TEXTS[10], TEXTS[14]], 10)
        assert pancreas[100] > heart[100]
    else:  # the trees refit with the confirmed documents
        assert ranker.sparse.model is not trees and 100 in set(ranker.sparse.label_ids.tolist())
    al.record([(15, 100)], ["no"])
    al.train()  # the same answers plus one more "no": the memory is rebuilt, not appended to again
    assert len(ranker.memory) == 5 and sum(100 in row for row in ranker.memory.labels) == 2


def test_a_label_that_only_gets_no_is_given_up_while_another_still_finds_positives(ranker):
    al = ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, {100: "Pancreatic Neoplasms", 101: "Radiology"},
                             {100: sorted(TEXTS), 101: sorted(TEXTS)}, ALConfig(give_up_after=2))
    al.record([(11, 101), (12, 101), (10, 100)], ["no", "no", "yes"])
    assert al.given_up() == {101}
    assert {lab for _, lab in al.select(4)} == {100}
    al.record([(13, 101)], ["yes"])  # a "yes" ends the run of "no"
    assert al.given_up() == set()
    al.record([(d, 100) for d in (11, 12)] + [(14, 101), (15, 101)], ["no"] * 4)
    assert al.given_up() == {100, 101}
    assert al.select(2)  # every label given up: keep asking rather than stop


def test_replay_mixes_the_configured_ratio(ranker):
    al = cycle(ranker, replay_ratio=2.0)
    al.record([(10, 100), (13, 100)], ["yes", "yes"])
    stats = al.train()
    assert stats["positives"] == 2 and stats["replay"] == 4
    assert all(lab in OLD_GOLD[d] for d, lab in al.replay_sample(5))


def test_unsure_answers_are_neither_positive_nor_negative(ranker):
    al = cycle(ranker)
    al.record([(10, 100), (11, 100)], ["unsure", "unsure"])
    assert al.train() == {"skipped": "no new yes/no answer yet"}
    assert al.select(10) and (10, 100) not in al.select(10)  # asked once, never again


def test_a_label_already_in_the_taxonomy_and_empty_pools_are_refused(ranker):
    with pytest.raises(XmtcError, match="already in the model's taxonomy"):
        ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, {1: "Myocardial Infarction"}, {1: [10]})
    with pytest.raises(XmtcError, match="empty document pool"):
        ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, NEW, {100: []})


def test_a_pool_larger_than_the_corpus_is_simply_the_corpus(ranker):
    al = ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, NEW, {100: sorted(TEXTS) * 3}, ALConfig())
    assert sorted(al.pools[100]) == sorted(TEXTS)


def test_each_iteration_trains_on_fresh_answers_plus_recalled_earlier_ones(ranker):
    al = cycle(ranker, recall_ratio=1.0, replay_ratio=0.0)
    al.record([(10, 100), (11, 100)], ["yes", "no"])
    first = al.train()
    assert (first["fresh"], first["positives"], first["negatives"]) == (2, 1, 1)
    assert al.train() == {"skipped": "no new yes/no answer yet"}  # nothing new: no retraining on old answers
    al.record([(13, 100), (15, 100)], ["yes", "yes"])
    second = al.train()
    assert second["fresh"] == 2 and (second["positives"], second["negatives"]) == (3, 1)  # + both earlier answers
    assert second["confirmed"] == 3
    assert set(second["seconds"]) >= {"labels", "sparse", "cross"}


def test_a_new_labels_prior_starts_typical_and_follows_confirmed_answers(ranker):
    typical = ranker.typical_frequency()
    al = cycle(ranker, seen_after=1)
    row = ranker.table.row(100)
    assert ranker.table.freq[row] == typical > 0
    al.base_freq = 1.0
    al.record([(10, 100), (13, 100), (15, 100), (11, 100)], ["yes", "yes", "yes", "no"])
    assert ranker.table.freq[row] == 3.0  # the confirmed count once it passes the typical frequency


def test_only_the_head_of_each_pool_is_rescored(ranker):
    order = [11, 12, 14, 10, 13, 15]  # the adapted encoder's order: the pancreatic documents last
    al = ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, NEW, {100: order}, ALConfig(rerank_window=3))
    al.record([(11, 100)], ["no"])
    ranked = al.ranked_pools()[100]
    assert set(ranked[:3]) == {12, 14, 10} and ranked[0] == 10  # head re-scored: the pancreatic one first
    assert ranked[3:] == [13, 15] and 11 not in ranked  # the tail keeps its order; asked documents leave


def test_a_label_with_an_empty_pool_is_reported_and_the_others_go_on(ranker):
    al = ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, {100: "Pancreatic Neoplasms", 101: "Rare Thing"},
                             {100: [10, 13], 101: []}, ALConfig())
    assert al.empty_pools == ["Rare Thing"]
    assert {lab for _, lab in al.select(5)} == {100}
    with pytest.raises(XmtcError, match="have no text"):
        ActiveLearningCycle(ranker, TEXTS, OLD_GOLD, {102: "X"}, {102: [10, 999]})


@pytest.mark.slow  # two iterations training a real cross-encoder
def test_two_iterations_on_real_pubmed_documents(shared_data, encoder_path):
    from core.data.demo import NEW_LABELS, read_demo_corpus
    from core.data.reports import ImportReport

    new_name = (shared_data / NEW_LABELS).read_text().split("\n")[0].strip()
    train = [r for r in read_demo_corpus(shared_data, ImportReport()) if r.split == "train"]
    positives = [r for r in train if new_name in r.labels][:4]
    others = [r for r in train if new_name not in r.labels][:8]
    docs = positives + others
    names = sorted({n for r in docs for n in r.labels} - {new_name})
    ids = {n: i for i, n in enumerate(names)}
    texts = {i: r.text for i, r in enumerate(docs)}
    old_gold = {i: {ids[n] for n in r.labels if n != new_name} for i, r in enumerate(docs)}
    new_id = len(names)
    bi = load_bi_encoder(encoder_path, "cpu", 64)
    ranker = BiCrossRanker.build(bi, make_label_table([LabelRow(i, n, n) for n, i in ids.items()], list(old_gold.values())),
                                 cross=CrossScorer(encoder_path, "cpu", 64))
    al = ActiveLearningCycle(ranker, texts, old_gold, {new_id: new_name}, {new_id: sorted(texts)},
                             ALConfig(questions_per_iteration=6, train_batch=4))
    vector = ranker.vectors[ranker.table.row(new_id)].copy()

    def recall(r, _):
        top = r.rank([texts[i] for i in range(len(positives))], k=10, rerank=False)
        return {"R@10": sum(new_id in [p.label_id for p in t] for t in top) / len(top)}

    oracle = SimulatedOracle({i: ({new_id} if i < len(positives) else set()) for i in texts})
    history = al.run(oracle, iterations=2, evaluate=recall)
    assert len(history) == 3 and all("R@10" in h.metrics for h in history)
    assert sum(h.asked for h in history) == 12 and sum(h.positives for h in history) == len(positives)
    assert not np.allclose(vector, ranker.vectors[ranker.table.row(new_id)], atol=1e-4)  # the new label moved


def test_a_new_label_counts_as_seen_once_it_has_enough_confirmed_documents(ranker):
    al = cycle(ranker, seen_after=2)
    al.base_freq = 0.0
    al.record([(10, 100), (11, 100)], ["yes", "no"])
    assert ranker.table.freq[ranker.table.row(100)] == 0.0  # one confirmed document: still a label without any
    al.record([(13, 100)], ["yes"])
    assert ranker.table.freq[ranker.table.row(100)] == 2.0
    al.cfg.seen_after = 0  # the default: never counted as trained on, whatever the answers
    al.record([(15, 100)], ["yes"])
    assert ranker.table.freq[ranker.table.row(100)] == 0.0


def test_the_cross_encoder_learns_no_answers_as_negatives_of_their_label(ranker, monkeypatch):
    from core.newlabels import active_learning

    seen: list[list[tuple[int, int, float]]] = []
    real = active_learning.train_cross_encoder
    monkeypatch.setattr(active_learning, "train_cross_encoder",
                        lambda scorer, examples, *a, **k: seen.append(list(examples)) or real(scorer, examples, *a, **k))
    al = cycle(ranker, cross_negatives=0, recall_ratio=0.0, replay_ratio=0.0, cross_replay_docs=0)
    al.record([(10, 100), (11, 100), (14, 100)], ["yes", "no", "no"])
    al.train()
    docs = sorted({10, 11, 14})  # the examples' document indices follow the sorted answered documents
    triples = {(docs[i], lab, t) for i, lab, t in seen[0]}
    assert triples == {(10, 100, 1.0), (11, 100, 0.0), (14, 100, 0.0)}  # each "no" is a negative of its label


def test_an_answer_is_marked_learned_only_when_the_iteration_learned_it(ranker):
    al = cycle(ranker, cross_examples=2, cross_negatives=0, replay_ratio=0.0, cross_replay_docs=0)
    al.record([(11, 100), (12, 100)], ["no", "no"])
    stats = al.train()  # no "yes" yet: the cross-encoder does not train, its "no" answers wait for it
    assert "cross" not in stats and al.trained == set() and stats["left_for_later"] == 2
    al.record([(10, 100), (13, 100), (15, 100)], ["yes", "yes", "yes"])
    stats = al.train()  # five fresh answers, two fit the cap: only those two are learned
    assert stats["cross"]["examples"] == 2 and len(al.trained) == 2 and stats["left_for_later"] == 3
    for _ in range(3):  # the rest in the next iterations, two at a time
        al.train()
    assert al.trained == set(al.answers)
    assert al.train() == {"skipped": "no new yes/no answer yet"}


@pytest.mark.parametrize("why", ["no cross-encoder", "its rule is off"])
def test_without_a_serving_re_ranker_every_fresh_answer_is_learned_and_nothing_trains_it(ranker, why):
    if why == "no cross-encoder":
        ranker.cross = None
    else:  # the bundle's rule found the re-ranker added nothing on validation: it serves no ranking
        ranker.fusion.rerank = "off"
    al = cycle(ranker)
    al.record([(11, 100), (10, 100)], ["no", "yes"])
    stats = al.train()
    assert stats["learned"] == 2 and al.trained == {(11, 100), (10, 100)} and "cross" not in stats


@pytest.mark.slow  # trains a real cross-encoder twice
def test_the_same_answers_read_as_the_job_reads_them_give_the_same_model(world, encoder_path, monkeypatch):
    import torch

    from core.data.catalog import documents
    from core.model.ranker import NeighbourMemory
    from core.model.sparse import SparseBackend, SparseConfig
    from core.newlabels.campaigns import CampaignConfig, add_questions, answer, claim_next, create_campaign
    from core.newlabels.jobs import _campaign_answers

    db, pid, onc = world["db"], world["pid"], world["labels"]["onc"]
    cid = create_campaign(db, pid, "c", [onc], world["admin"], CampaignConfig())
    add_questions(db, cid, [(d, onc) for d in world["docs"]], world["version"], 0)
    for user, value in zip(world["users"], ["yes", "no", "yes"], strict=True):
        q = claim_next(db, cid, user)
        answer(db, q.item_id, user, value)
    docs = documents(db, pid)
    texts = {d.id: d.text for d in docs}
    old = {d.id: set(d.gold) - {onc} for d in docs}
    labels = [LabelRow(i, ext, ext) for ext, i in world["labels"].items() if i != onc]
    # Omikuji has no seed (its k-means and its linear solver draw from the thread's RNG): two fits on the same data
    # differ in their last digits; the heads the cycle fits over its features must be the same.
    refits: list[tuple[list[str], list[set[int]]]] = []
    fit = SparseBackend.fit.__func__

    def recorded(cls, texts, gold, config=None, n_threads=None):
        refits.append((list(texts), [set(g) for g in gold]))
        return fit(cls, texts, gold, config, n_threads)

    monkeypatch.setattr(SparseBackend, "fit", classmethod(recorded))

    def learned() -> BiCrossRanker:
        torch.manual_seed(0)  # the cross-encoder's new head starts the same
        model = BiCrossRanker.build(load_bi_encoder(encoder_path, "cpu", 64), make_label_table(labels, list(old.values())),
                                    cross=CrossScorer(encoder_path, "cpu", 64))
        model.sparse = SparseBackend.fit(list(texts.values()), list(old.values()), SparseConfig(min_df=1, cluster_k=2))
        model.memory = NeighbourMemory(model.embed_documents(list(texts.values())), [sorted(g) for g in old.values()])
        al = ActiveLearningCycle(model, texts, old, {onc: "Oncology"}, {onc: sorted(texts)},
                                 ALConfig(train_batch=2, cross_check=False))  # the re-ranker (a new head) trains
        answers, trained = _campaign_answers(db, cid)  # as the job reads them
        al.answers, al.trained = answers, trained & set(answers)
        al.record([], [])
        assert al.train()["cross"]["steps"] >= 1
        return model

    a, b = learned(), learned()
    assert np.allclose(a.vectors[a.table.row(onc)], b.vectors[b.table.row(onc)], atol=1e-6)
    assert a.memory.labels == b.memory.labels and onc in {lab for row in a.memory.labels for lab in row}
    # The sparse backend learns the answers as a head (its trees are fitted once per model, never by the cycle).
    assert len(refits) == 2 and a.sparse.heads.label_ids.tolist() == b.sparse.heads.label_ids.tolist() == [onc]
    assert np.allclose(a.sparse.heads.weights.toarray(), b.sparse.heads.weights.toarray())
    assert a.sparse.heads.bias == pytest.approx(b.sparse.heads.bias)
    probe = list(texts.values())
    pairs = [a.table.text(i) for i in a.table.ids for _ in probe], [t for _ in a.table.ids for t in probe]
    assert np.allclose(a.cross.logits_np(*pairs), b.cross.logits_np(*pairs), atol=1e-5)


class ScriptedCross:
    """A cross-encoder written as code: it scores the ``yes`` documents high (``right``) or low."""

    def __init__(self, yes: set[str], right: bool) -> None:
        self.yes, self.right = yes, right

    def logits_np(self, label_texts, doc_texts, batch_size=64):
        about = np.array([4.0 if d in self.yes else -4.0 for d in doc_texts], dtype=np.float32)
        return about if self.right else -about


@pytest.mark.parametrize("right", [True, False])
def test_the_cross_encoder_trains_only_where_it_beats_the_first_stage_on_answers_it_has_not_learned(
        ranker, monkeypatch, right):
    from core.newlabels import active_learning

    trained = []
    monkeypatch.setattr(active_learning, "train_cross_encoder",
                        lambda scorer, examples, *a, **k: trained.append(len(examples)) or {"examples": len(examples)})
    # SMEs say a document named after the label is not about it, and one the name does not match is: the first stage
    # cannot get both right, a re-ranker that read them can.
    ranker.cross = ScriptedCross({TEXTS[10], TEXTS[11]}, right)
    al = cycle(ranker, cross_check=True)
    assert 100 in ranker.fusion.protected  # the campaign's label: never ranked lower by the re-ranker
    al.record([(10, 100), (11, 100), (15, 100), (14, 100), (12, 100)], ["yes", "yes", "no", "no", "no"])
    stats = al.train()
    check = stats["cross_check"]
    assert check["answers"] == 5 and check["cross_auc"] == (1.0 if right else 0.0) and 0 < check["first_auc"] < 1
    assert check["earns"] is right
    assert bool(trained) is right and ("cross" in stats) is right
    assert stats["learned"] == 5  # learned either way: by the re-ranker too where it earned it


def test_consolidation_teaches_the_bi_encoder_the_campaign_with_replay_and_embeds_everything_again(ranker):
    from core.model.encoders import fingerprint
    from core.model.ranker import NeighbourMemory

    known = [10, 11, 12, 14]
    ranker.memory = NeighbourMemory(ranker.embed_documents([TEXTS[d] for d in known]),
                                    [sorted(OLD_GOLD[d]) for d in known])
    al = cycle(ranker, consolidate_replay=2.0)
    al.record([(10, 100), (13, 100), (11, 100)], ["yes", "yes", "no"])
    al.train()
    weights, old_vector = fingerprint(ranker.bi_encoder), ranker.vectors[ranker.table.row(1)].copy()
    stats = al.consolidate()
    assert stats["positives"] == 2 and stats["replay"] == 4  # two confirmed answers, two old pairs each
    assert fingerprint(ranker.bi_encoder) != weights
    assert not np.allclose(ranker.vectors[ranker.table.row(1)], old_vector, atol=1e-5)  # every label embedded again
    # The memory is rebuilt with the new encoder from every document with a known label, the confirmed ones included.
    with_labels = [d for d in sorted(TEXTS) if OLD_GOLD[d] or d == 13]  # 13: confirmed, no old label
    assert len(ranker.memory) == len(with_labels)
    assert np.allclose(ranker.memory.vectors, ranker.embed_documents([TEXTS[d] for d in with_labels]), atol=1e-5)
    assert sorted(ranker.memory.labels[with_labels.index(13)]) == [100]
    # The new label's vector is its prototype under the new encoder (its name moved towards its confirmed documents).
    name = ranker.embed_documents([NEW[100]])[0]
    assert not np.allclose(ranker.vectors[ranker.table.row(100)], name / np.linalg.norm(name), atol=1e-4)


def test_consolidation_can_be_turned_off_and_needs_a_confirmed_answer(ranker):
    from core.model.encoders import fingerprint

    weights = fingerprint(ranker.bi_encoder)
    al = cycle(ranker, consolidate_replay=0.0)
    al.record([(10, 100)], ["yes"])
    assert "off" in al.consolidate()["skipped"]
    al = cycle(BiCrossRanker.build(ranker.bi_encoder, make_label_table(OLD, list(OLD_GOLD.values()))))
    al.record([(11, 100)], ["no"])
    assert "no confirmed answer" in al.consolidate()["skipped"]
    assert fingerprint(ranker.bi_encoder) == weights
