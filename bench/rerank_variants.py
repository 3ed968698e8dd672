"""Which re-ranker earns its cost? Cross-encoder variants on one saved BiCross bundle, with the same budget each.

Usage: python -m bench.rerank_variants BUNDLE [--examples 7680] [--test-docs 300]
       [--variants pretrained,pointwise:terms,pointwise:name,listwise:terms,listwise:name]

BUNDLE is `bench.ranking`'s (PubMed/MeSH; its first stage is kept as it is). Each variant starts a cross-encoder from
the same checkpoint (the configured default), trains it on ``--examples`` (document, label) pairs of the TRAIN part the
bundle was trained on (the same number of pairs, so the same compute, whatever the loss), then fits the second stage
and the re-ranking rule on the bundle's validation documents exactly as training does. Reported per variant: the
validation gains the rule saw (what a setting is chosen on), and on TEST documents the first stage, every document
re-ranked, and the rule as served. Variants: ``pretrained`` (no fine-tuning), ``LOSS:TEXT`` with LOSS pointwise (binary
cross-entropy on mined negatives, today's training) or listwise (softmax over groups of the document's first-stage
shortlist), TEXT terms (the bundle's label text, name and its records' words where it has them) or name (the name
alone). Writes bench/results/rerank_variants.json and its BENCHMARKS.md section, and the summary into ranking.json.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, command_line, machine, publish
from bench.ranking import load_split, log, progress_printer
from core.config import Settings
from core.model.bicross import TUNE_METRIC, Validation, evaluate_ranker, fit_first_stage, fit_second_stage, validation_split
from core.model.cross import CrossScorer
from core.model.encoders import default_encoder_path, default_reranker_path
from core.model.loading import load_ranker
from core.model.ranker import BiCrossRanker
from core.model.training import TrainConfig, cross_examples, cross_groups, train_cross_encoder

VARIANTS = ("pretrained", "pointwise:terms", "pointwise:name", "listwise:terms", "listwise:name")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, nargs="?", help="PubMed: bench.ranking's bundle")
    parser.add_argument("--tibkat", type=Path, help="instead: the TIBKAT project bench.tibkat built (its data folder)")
    parser.add_argument("--examples", type=int, default=7680, help="(document, label) pairs each variant trains on")
    parser.add_argument("--test-docs", type=int, default=300)
    parser.add_argument("--val-docs", type=int, default=0, help="validation documents the rule is fitted on (0: all)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    command = command_line("bench.rerank_variants", argv)
    if args.tibkat:
        from bench.tibkat import served

        db, version, dev, _ = served(args.tibkat)
        from core.data.catalog import documents

        train = [(d.text, set(d.gold)) for d in documents(db, 1) if d.trains]  # as the training job read them
        test, bundle, name = [(d.text, set(d.gold)) for d in dev], Path(version.path), "rerank_variants_tibkat"
        db.dispose()
    elif args.bundle:
        _, train, test = load_split(Settings.from_env().demo_data_dir)
        bundle, name = args.bundle, "rerank_variants"
    else:
        parser.error("give a bundle (PubMed) or --tibkat FOLDER")
    settings = Settings.from_env()
    test = test[: args.test_docs]
    ranker: BiCrossRanker = load_ranker(bundle, "cpu")
    base = TrainConfig(cross_max_examples=args.examples)
    tr, val = validation_split(len(train), base.validation_share, base.seed)  # the split the bundle was trained on
    val = val[: args.val_docs] if args.val_docs else val
    tr_texts, tr_gold = [train[i][0] for i in tr], [train[i][1] for i in tr]
    known = {int(i) for i in ranker.table.ids}
    tr_gold = [{g for g in s if g in known} for s in tr_gold]
    validation = Validation([train[i][0] for i in val], [{g for g in train[i][1] if g in known} for i in val])
    served_first = ranker.fusion.first
    fit_first_stage(ranker, validation, "learned", base.seed)  # validation scored out of fold, as training does
    ranker.fusion.first = served_first  # TEST is ranked by the bundle's own first stage (the same one for all of them)
    mined = random.Random(base.seed).sample(range(len(tr_texts)), min(len(tr_texts), args.examples))
    tr_texts, tr_gold = [tr_texts[i] for i in mined], [tr_gold[i] for i in mined]  # enough documents for the pairs
    cand, _ = ranker.candidates(tr_texts, n=base.cross_top_k)
    shortlists = [list(r) for r in cand]
    test_texts, test_gold = [t for t, _ in test], [g for _, g in test]
    vectors = ranker.embed_documents(test_texts)
    first = evaluate_ranker(ranker, test_texts, test_gold, doc_vectors=vectors, rerank=False)
    log(f"first stage on {len(test)} TEST documents: {first}")
    texts, names = list(ranker.table.texts), list(ranker.table.names)
    init = default_reranker_path(settings.reranker_path, default_encoder_path(settings.encoder_path),
                                 settings.pretrained_dir)
    rows: dict[str, dict[str, Any]] = {}
    for variant in [v for v in args.variants.split(",") if v]:
        loss, _, text = variant.partition(":")
        ranker.table.texts = names if text == "name" else texts  # what the cross-encoder reads (the first stage's
        # label vectors stay as they were)
        ranker.cross = CrossScorer(init, "cpu", base.cross_max_length)
        clock = time.monotonic()
        stats: dict[str, Any] = {}
        if loss != "pretrained":
            cfg = TrainConfig(cross_max_examples=args.examples, cross_loss=loss)
            mine = cross_groups if loss == "listwise" else cross_examples
            examples = mine(tr_gold, shortlists, cfg, random.Random(cfg.seed))
            stats = train_cross_encoder(ranker.cross, examples, tr_texts, ranker.table.text_map(), cfg,
                                        progress_printer(variant))
        minutes = (time.monotonic() - clock) / 60
        fitted = fit_second_stage(ranker, validation, base.seed)
        every = evaluate_ranker(ranker, test_texts, test_gold, doc_vectors=vectors, every=True)
        served = evaluate_ranker(ranker, test_texts, test_gold, doc_vectors=vectors)
        gains = fitted.get("rerank_gains", {})
        rows[variant] = {
            "loss": loss, "label_text": text or "terms", "examples": stats.get("examples", 0),
            "train_minutes": minutes, "final_loss": stats.get("final_loss"),
            "val_gain_every_doc": gains.get("1.0"), "val_best_gain": max(gains.values()) if gains else None,
            "val_gains": gains, "rule": ranker.fusion.rerank, "rule_share": ranker.fusion.rerank_share,
            "test_every_doc": every, "test_served": served,
            "test_gain_every_doc": every[TUNE_METRIC] - first[TUNE_METRIC],
            "test_gain_served": served[TUNE_METRIC] - first[TUNE_METRIC]}
        log(f"{variant}: {json.dumps({k: v for k, v in rows[variant].items() if k != 'val_gains'}, default=str)}")
    ranker.table.texts = texts
    best = max(rows, key=lambda v: rows[v]["val_best_gain"] if rows[v]["val_best_gain"] is not None else -1.0)
    results = {"corpus": "TIBKAT" if args.tibkat else "PubMed/MeSH", "bundle": str(bundle), "test_docs": len(test),
               "validation_docs": len(validation.texts),
               "examples_per_variant": args.examples, "cross_init": init, "test_first_stage": first,
               "variants": rows, "best_variant_by_validation": best,
               "best_variant_val_gain": rows[best]["val_best_gain"],
               "best_variant_test_gain_every_doc": rows[best]["test_gain_every_doc"],
               "machine": machine(), "command": command}
    publish(name, results, render, not args.no_write)
    main_results = ROOT / "bench" / "results" / ("tibkat.json" if args.tibkat else "ranking.json")
    if not args.no_write and main_results.exists():  # the variants beside the served bundle's own run
        r = json.loads(main_results.read_text())
        r["rerank_variants"] = {v: {k: row[k] for k in ("train_minutes", "examples", "val_best_gain",
                                                         "val_gain_every_doc", "test_gain_every_doc",
                                                         "test_gain_served", "rule")} for v, row in rows.items()}
        r["rerank_variants_from"] = command
        main_results.write_text(json.dumps(r, indent=2, default=str))


def render(r: dict) -> str:
    corpus = r.get("corpus") or ("TIBKAT" if "--tibkat" in r["command"] else "PubMed/MeSH")  # older files: by command
    test = "dev_en" if corpus == "TIBKAT" else "TEST"
    lines = [f"""## Which re-ranker earns its cost on {corpus} (`bench/rerank_variants.py`)

Command: `{r['command']}` · machine: {r['machine']}. One bundle's first stage (`{Path(r['bundle']).name}`); each
cross-encoder starts from `{Path(r['cross_init']).name}` and trains on {r['examples_per_variant']:,} pairs; second stage
and rule fitted on {r['validation_docs']} validation documents (out of fold, as training does); {test}: the first
{r['test_docs']} documents (the bundle's own first stage alone: nDCG@10 {r['test_first_stage']['nDCG@10']:.3f}).

| variant | pairs | train min | val gain, every doc | val gain, best share | rule (share) | {test} gain, every doc \
| {test} gain, served |
|---|---|---|---|---|---|---|---|"""]
    for name, v in r["variants"].items():
        def num(x: Any) -> str:
            return "" if x is None else f"{x:+.4f}"

        lines.append(f"| {name} | {v['examples']:,} | {v['train_minutes']:.1f} | {num(v['val_gain_every_doc'])} | "
                     f"{num(v['val_best_gain'])} | {v['rule']} ({v['rule_share']:.0%}) | "
                     f"{num(v['test_gain_every_doc'])} | {num(v['test_gain_served'])} |")
    lines.append(f"\nBest by validation: {r['best_variant_by_validation']} (validation gain "
                 f"{r['best_variant_val_gain']:+.4f}, {test} every-document gain "
                 f"{r['best_variant_test_gain_every_doc']:+.4f} nDCG@10).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
