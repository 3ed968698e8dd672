"""Training on crafted data and a tiny real run with the bundled model."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from core.data.concepts import LabelRow
from core.errors import ModelError
from core.model.bicross import fit_bicross, make_label_table
from core.model.loading import load_ranker
from core.model.ranker import BiCrossRanker
from core.model.training import TrainConfig, conflict_free_batches, cross_examples
from core.model.versions import read_manifest, write_bundle

LABELS = [LabelRow(1, "mi", "Myocardial Infarction"), LabelRow(2, "bc", "Breast Neoplasms"),
          LabelRow(3, "dm", "Diabetes Mellitus"), LabelRow(4, "as", "Asthma"), LabelRow(5, "hu", "Humans")]
DOCS = [
    ("Acute myocardial infarction treated with early angioplasty in older patients.", {1, 5}),
    ("Breast cancer screening with mammography in women over fifty.", {2, 5}),
    ("Insulin therapy and glucose control in type 2 diabetes.", {3, 5}),
    ("Inhaled corticosteroids for childhood asthma exacerbations.", {4, 5}),
    ("Heart attack risk after chemotherapy for breast tumours.", {1, 2}),
    ("Airway inflammation in asthma and obesity-related diabetes.", {3, 4}),
]


def test_batches_never_repeat_a_label_or_document_and_never_hold_another_documents_gold_label():
    rng = random.Random(1)
    gold = [set(rng.sample(range(30), 4)) for _ in range(60)]
    pairs = [(d, lab) for d, g in enumerate(gold) for lab in sorted(g)]
    batches = conflict_free_batches(pairs, gold, 8, random.Random(0))
    assert batches
    for batch in batches:
        docs = [pairs[i][0] for i in batch]
        labels = [pairs[i][1] for i in batch]
        assert len(set(docs)) == len(docs)
        assert len(set(labels)) == len(labels)
        for i in batch:
            d, lab = pairs[i]
            assert all(lab not in gold[other] for other in docs if other != d)
    placed = {i for b in batches for i in b}
    assert len(placed) == len(set().union(*map(set, batches)))  # no pair twice


def test_two_conflicting_pairs_go_to_different_batches():
    # doc 1 carries A and B: (doc 0, A) would be a wrong negative for doc 1, so they must not meet.
    gold = [{"A"}, {"A", "B"}, {"C"}, {"D"}]
    pairs = [(0, "A"), (1, "B"), (2, "C"), (3, "D")]
    for seed in range(20):
        for batch in conflict_free_batches(pairs, gold, 4, random.Random(seed)):
            assert not {0, 1} <= set(batch)


def test_cross_encoder_negatives_are_never_gold_and_known_wrong_labels_come_first():
    gold = [{1, 2}, {3}]
    candidates = [[1, 2, 3, 4, 5, 6, 7, 8], [3, 1, 2, 9]]
    cfg = TrainConfig(cross_negatives=3, cross_positives_per_doc=4)
    for seed in range(10):
        triples = cross_examples(gold, candidates, cfg, random.Random(seed), hard_negatives=[{8, 1}, set()])
        for d, lab, target in triples:
            assert (lab in gold[d]) == (target == 1.0)
        negs0 = {lab for d, lab, t in triples if d == 0 and t == 0.0}
        assert 8 in negs0 and len(negs0) == 6
        assert sorted(lab for d, lab, t in triples if d == 1 and t == 0.0) == [1, 2, 9]


@pytest.fixture(scope="module")
def tiny_fit(encoder_path):
    cfg = TrainConfig(epochs=2, batch_size=3, lr=1e-4, cross_positives_per_doc=2, validation_share=0.0,
                      max_seq_length=64, cross_max_length=64)
    texts, gold = [t for t, _ in DOCS], [g for _, g in DOCS]
    before = BiCrossRanker.build(__import__("core.model.encoders", fromlist=["x"]).load_bi_encoder(encoder_path, "cpu"),
                                 make_label_table(LABELS, gold))
    fit = fit_bicross(encoder_path, "cpu", LABELS, texts, gold, cfg)
    return before, fit, texts


@pytest.mark.slow  # trains a real bi-encoder and cross-encoder (seconds)
def test_a_tiny_real_training_run_changes_the_model(tiny_fit):
    before, fit, texts = tiny_fit
    assert fit.stats["bi"]["steps"] >= 2 and fit.stats["cross"]["examples"] > 0
    old = before.embed_documents(texts[:2])
    new = fit.ranker.embed_documents(texts[:2])
    assert not np.allclose(old, new, atol=1e-4)
    assert fit.ranker.cross is not None


@pytest.mark.slow  # the same training
def test_a_trained_model_round_trips_through_a_saved_bundle(tiny_fit, tmp_path):
    _, fit, texts = tiny_fit
    bundle = write_bundle(tmp_path, 1, "bicross", fit.ranker.save)
    assert read_manifest(bundle)["kind"] == "bicross"
    loaded = load_ranker(bundle, device="cpu")
    a = fit.ranker.rank(texts[:3], k=5)
    b = loaded.rank(texts[:3], k=5)
    assert [[p.label_id for p in r] for r in a] == [[p.label_id for p in r] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert [p.score for p in ra] == pytest.approx([p.score for p in rb], abs=1e-4)
        assert all(0.0 <= p.cross_score <= 1.0 for p in rb)


def test_training_without_gold_labels_is_refused(encoder_path):
    with pytest.raises(ModelError, match="no training document has a gold label"):
        fit_bicross(encoder_path, "cpu", LABELS, [t for t, _ in DOCS], [set() for _ in DOCS], TrainConfig())


def test_a_label_without_text_is_refused():
    with pytest.raises(ModelError, match="no name to embed"):
        make_label_table([*LABELS, LabelRow(9, "x9", "  ")], [])


def test_a_bundle_from_an_incompatible_version_is_refused(tiny_fit, tmp_path):
    _, fit, _ = tiny_fit
    bundle = write_bundle(tmp_path, 1, "bicross", fit.ranker.save)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["format"] = 99
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="format 99"):
        load_ranker(bundle)
    with pytest.raises(ModelError, match="not a model bundle"):
        load_ranker(tmp_path / "nowhere")


def test_an_empty_document_is_refused(tiny_fit):
    _, fit, _ = tiny_fit
    with pytest.raises(ModelError, match="Document 2 is empty"):
        fit.ranker.rank(["a real text", ""])


def test_a_new_label_is_served_without_retraining(tiny_fit):
    _, fit, _ = tiny_fit
    ranker = fit.ranker
    ranker.add_labels([42], ["Pancreatic Neoplasms"], ["pc"])
    top = ranker.rank(["Pancreatic cancer surgery outcomes and pancreatic neoplasms"], k=3, rerank=False)[0]
    assert 42 in [p.label_id for p in top]
    ranker.remove_labels([42])
    assert 42 not in [p.label_id for p in ranker.rank(["Pancreatic neoplasms"], k=5, rerank=False)[0]]


def _loop(steps: int, deadline: float | None, clock: list[float]):
    import torch

    from core.model.training import Steps

    weight = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    messages: list[str] = []
    loop = Steps("toy", [weight], optimizer, steps, 0.1, lambda p, m: messages.append(m), deadline=deadline)
    loop.started = clock[0]
    return loop, weight, optimizer, messages


def test_a_deadline_cuts_the_loop_and_the_schedule_still_decays_to_zero(monkeypatch):
    from core.model import training

    clock = [1000.0]
    monkeypatch.setattr(training.time, "monotonic", lambda: clock[0])
    loop, weight, optimizer, messages = _loop(100, deadline=1000.0 + 10.0, clock=clock)
    while not loop.finished:
        clock[0] += 1.0  # each step takes one second: ten fit before the deadline
        loop.step((weight * 2).sum(), 0, 1)
    assert loop.done == 10 and loop.summary()["cut_by_budget"] and loop.summary()["planned_steps"] == 100
    assert optimizer.param_groups[0]["lr"] == 0.0  # the last step that fits ends the decay
    assert "time budget: 10 of 100" in messages[-1] and "ETA 0 s" in messages[-1]
    assert "ETA 7 s" in messages[2]  # after 3 steps of 1 s, 7 remain


def test_without_a_deadline_the_schedule_is_the_linear_warmup_and_decay(monkeypatch):
    import torch
    from transformers import get_linear_schedule_with_warmup

    clock = [0.0]
    loop, weight, optimizer, _ = _loop(20, None, clock)
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=1.0)
    ref = get_linear_schedule_with_warmup(ref_opt, 2, 20)
    while not loop.finished:
        loop.step((weight * 2).sum(), 0, 1)
        ref_opt.step()
        ref.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"])
    assert loop.done == 20 and not loop.summary()["cut_by_budget"]


def test_the_budget_plan_reserves_the_work_after_training_and_splits_the_rest():
    import time

    from core.model.bicross import BudgetPlan

    now = time.monotonic()
    bi_only = BudgetPlan.make(now + 600, TrainConfig(train_cross=False), 0.01, 8000, 1440, 160, 1000, now=now)
    # 0.1*8000 + 1.1*1440 + 3.5*160 + 1.5*1000 = 4444 documents' worth, 44.44 s, + 30 s fixed, x 1.1
    assert bi_only.reserved_seconds == pytest.approx(1.1 * (44.44 + 30.0))
    assert bi_only.bi_deadline == pytest.approx(now + 600 - bi_only.reserved_seconds) and bi_only.cross_deadline is None
    assert bi_only.eval_docs == 1000 and bi_only.note == ""
    both = BudgetPlan.make(now + 2400, TrainConfig(), 0.01, 8000, 1440, 160, 1000, now=now)
    assert both.train_cross and both.reserved_seconds > bi_only.reserved_seconds  # the cross-encoder's scoring too
    assert now < both.bi_deadline < both.cross_deadline == pytest.approx(now + 2400 - both.reserved_seconds)
    assert (both.bi_deadline - now) / (both.cross_deadline - now) == pytest.approx(0.6, abs=0.01)
    late = BudgetPlan.make(now + 60, TrainConfig(), 0.01, 8000, 1440, 160, 1000, now=now)  # more than the budget holds
    assert late.bi_deadline <= now + 1  # the loop stops after its few measured steps


def test_a_budget_leaves_out_what_it_cannot_afford_and_says_so():
    import time

    from core.model.bicross import BudgetPlan

    now = time.monotonic()
    # A library catalogue on a CPU: 41k subjects, 37k training records, 9.7k test records, 60 minutes.
    library = BudgetPlan.make(now + 3600, TrainConfig(), 0.0172, 41_218, 37_200, 4_133, 9_672, now=now)
    assert not library.train_cross and library.cross_deadline is None and "no cross-encoder" in library.note
    assert library.bi_deadline - now > 0.55 * 3600  # the bi-encoder gets most of the hour
    # A slow encoder: the evaluation would take more than its share, so it reads the first test documents.
    slow = BudgetPlan.make(now + 600, TrainConfig(train_cross=False), 0.05, 100, 100, 10, 5000, now=now)
    assert 500 < slow.eval_docs < 5000 and f"first {slow.eval_docs:,} of 5,000 test documents" in slow.note


def test_cross_encoder_negatives_come_only_from_the_top_k_candidates():
    cfg = TrainConfig(cross_negatives=10, cross_top_k=3)
    candidates = [[7, 1, 8, 9, 10, 11, 12]]  # 1 is gold; the top 3 hold two wrong labels, 7 and 8
    examples = cross_examples([{1}], candidates, cfg, random.Random(0))
    assert {lab for _, lab, t in examples if t == 0.0} == {7, 8}
    assert {lab for _, lab, t in examples if t == 1.0} == {1}


def test_a_label_is_described_by_the_words_of_its_training_documents_and_still_matched_by_its_name(tmp_path):
    from core.model.bicross import characteristic_terms
    from core.model.labels import LabelTable
    from core.model.lexical import LexicalMatcher

    texts = ["Battery cells for electric vehicles", "Electric vehicles and their battery packs",
             "Steel bridges under load", "Load tests of steel bridges", "A survey of everything"]
    gold = [{1}, {1}, {2}, {2}, set()]
    terms = characteristic_terms(texts, gold, 3)
    assert set(terms[1]) <= {"battery", "electric", "vehicles"} and set(terms[2]) <= {"steel", "bridges", "load"}
    rows = [LabelRow(1, "ev", "Elektrofahrzeug"), LabelRow(2, "br", "Brücke"), LabelRow(3, "x", "Unused")]
    table = make_label_table(rows, gold, terms=terms)
    assert table.texts[0].startswith("Elektrofahrzeug: ") and "battery" in table.texts[0] and table.texts[2] == "Unused"
    assert table.names == ["Elektrofahrzeug", "Brücke", "Unused"]
    table.save(tmp_path)
    again = LabelTable.load(tmp_path)
    assert again.texts == table.texts and again.names == table.names
    assert LexicalMatcher(again.ids, again.names).match("A note on Elektrofahrzeug design") == {1}


@pytest.mark.parametrize("case", ["german_names", "misleading_terms"])
def test_the_label_text_keeps_the_records_words_only_where_they_rank_validation_documents_better(encoder_path, case):
    from core.model.bicross import Validation, choose_label_terms
    from core.model.encoders import load_bi_encoder

    if case == "german_names":  # names an English encoder cannot read; the terms describe them
        names = ["Elektrofahrzeug", "Brückenbau", "Kernspaltung", "Weinbau", "Zahnmedizin"]
        terms = {1: ["battery", "electric", "vehicles"], 2: ["steel", "bridges", "load"],
                 3: ["nuclear", "fission", "reactor"], 4: ["vineyards", "grapes", "wine"], 5: ["teeth", "dental"]}
    else:  # precise English names; the terms describe another label
        names = ["Electric vehicles", "Bridges", "Nuclear fission", "Viticulture", "Dentistry"]
        terms = {1: ["steel", "bridges", "load"], 2: ["nuclear", "fission", "reactor"], 3: ["teeth", "dental"],
                 4: ["battery", "electric", "vehicles"], 5: ["vineyards", "grapes", "wine"]}
    labels = [LabelRow(i, f"x{i}", n) for i, n in enumerate(names, start=1)]
    validation = Validation(["Battery packs for electric cars", "Load tests of steel bridges",
                             "A fission reactor's neutron flux", "Grape harvests in vineyards",
                             "Caries in children's teeth"], [{1}, {2}, {3}, {4}, {5}])
    bi = load_bi_encoder(encoder_path, "cpu")
    kept, stats = choose_label_terms(bi, labels, [{1}, {2}, {3}, {4}, {5}], terms, TrainConfig(), validation)
    assert stats["label_text_chosen"] == ("name_terms" if case == "german_names" else "name")
    assert (kept is terms) == (case == "german_names")
    scores = stats["label_text_val"]
    assert (scores["name_terms"] > scores["name"]) == (case == "german_names")


def test_listwise_groups_hold_each_documents_gold_against_its_own_shortlist():
    from core.model.training import cross_groups

    gold = [{1, 2, 3}, {7}, set()]
    shortlists = [[1, 4, 5, 6, 2, 8, 9, 10, 11, 12, 3], [7, 20, 21, 22, 23, 24, 25, 26, 27], [30, 31]]
    cfg = TrainConfig(cross_loss="listwise", cross_group=8, candidates=10)
    triples = cross_groups(gold, shortlists, cfg, random.Random(0))
    assert len(triples) % 8 == 0
    groups = [triples[i:i + 8] for i in range(0, len(triples), 8)]
    positives = [(g[0][0], lab) for g in groups for _, lab, t in g if t]
    assert sorted(positives) == [(0, 1), (0, 2), (0, 3), (1, 7)]  # every gold label once, none of the empty document
    assert all(sum(t for _, _, t in g) <= 2 for g in groups)  # a quarter of a group at most
    for g in groups:
        (d,) = {doc for doc, _, _ in g}  # one document per group
        negatives = [lab for _, lab, t in g if not t]
        assert len(set(negatives)) == len(negatives) and not set(negatives) & gold[d]
        assert set(negatives) <= set(shortlists[d][:10])  # from the shortlist the re-ranker reads (top candidates)
    capped = cross_groups(gold, shortlists, TrainConfig(cross_loss="listwise", cross_max_examples=10, candidates=10),
                          random.Random(0))
    assert len(capped) == 8  # whole groups only


def test_the_listwise_loss_rewards_each_positive_above_its_groups_negatives():
    import torch

    from core.model.training import listwise_loss

    target = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    good = listwise_loss(torch.tensor([[3.0, -1.0, -2.0, 2.0]]), target)
    bad = listwise_loss(torch.tensor([[-1.0, 3.0, 2.0, -2.0]]), target)
    assert good < 0.1 < bad
    # -log(e^s / (e^s + sum over the negatives)), averaged over the positives; the other positive is not a negative
    s = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    assert float(listwise_loss(s, target)) == pytest.approx(float(torch.log(torch.tensor(3.0))), abs=1e-6)
    with pytest.raises(ModelError, match="groups of 8"):
        from core.model.training import train_cross_encoder

        train_cross_encoder(None, [(0, 1, 1.0)] * 5, ["d"], {1: "x"}, TrainConfig(cross_loss="listwise"))


@pytest.mark.parametrize("field, value", [("cross_loss", "softmax"), ("label_text", "names")])
def test_a_training_setting_outside_its_choices_is_refused_before_anything_trains(field, value):
    with pytest.raises(ModelError, match=f"Unknown .*{value!r}"):
        TrainConfig(**{field: value})
    with pytest.raises(ModelError, match=f"Unknown .*{value!r}"):
        TrainConfig.from_dict({**TrainConfig().as_dict(), field: value})
