"""Benchmark of adding 30 new labels by active learning, on the PubMed/MeSH protocol.

Usage:
    python -m bench.active_learning [--iterations 10] [--per-iteration 300] [--pool-size 400]
        [--train-docs N] [--test-docs N] [--initial BUNDLE] [--no-write]

Protocol (../shared/data/README.md): the 30 labels of new_labels.txt are removed from TRAIN's gold
labels and from the taxonomy; the initial BiCross model is trained on that; a separate bi-encoder is
adapted to the corpus with GPL and builds each new label's pool from TRAIN; then active learning asks
a simulated oracle (TRAIN's real gold labels). New-label Recall@10 is measured on the TEST documents
that carry a new label, ranking over the full label set.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, command_line, machine, update_benchmarks
from bench.ranking import load_split, log, progress_printer
from core.acquisition import make_strategy
from core.active_learning import ActiveLearningCycle, ALConfig
from core.bicross import fit_bicross
from core.config import Settings
from core.demo import NEW_LABELS
from core.encoders import default_encoder_path, encode, load_bi_encoder
from core.gpl import GplConfig, TitleQueries, mine, train_gpl
from core.metrics import evaluate
from core.oracle import SimulatedOracle
from core.pools import build_pools, pool_recall
from core.ranker import BiCrossRanker, load_ranker
from core.training import TrainConfig
from core.versions import write_bundle

POOL_KS = (100, 200, 400, 1000)


def recall10(ranker: BiCrossRanker, texts: list[str], gold: list[set[int]], rerank: bool) -> float:
    rankings = []
    for s in range(0, len(texts), 32):
        rankings += ranker.rank(texts[s:s + 32], k=10, rerank=rerank)
    return evaluate([[p.label_id for p in r] for r in rankings], gold, ("R@10",))["R@10"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Settings.from_env().demo_data_dir)
    parser.add_argument("--train-docs", type=int, default=None)
    parser.add_argument("--test-docs", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--per-iteration", type=int, default=150, help="questions per iteration (all labels)")
    parser.add_argument("--bicross-every", type=int, default=4, help="measure BiCross every k iterations (slow)")
    parser.add_argument("--pool-size", type=int, default=400)
    parser.add_argument("--initial", type=Path, default=None, help="reuse a trained initial bundle")
    parser.add_argument("--adapted", type=Path, default=None, help="reuse a GPL-adapted encoder saved by an earlier run")
    parser.add_argument("--skip-random", action="store_true")
    parser.add_argument("--initial-only", action="store_true", help="train and save the initial model, then stop")
    parser.add_argument("--lr", type=float, default=ALConfig.lr, help="bi-encoder learning rate per AL step")
    parser.add_argument("--cross-lr", type=float, default=ALConfig.cross_lr)
    parser.add_argument("--recall-ratio", type=float, default=ALConfig.recall_ratio)
    parser.add_argument("--replay-ratio", type=float, default=ALConfig.replay_ratio)
    parser.add_argument("--name", default="active_learning", help="results file and BENCHMARKS.md section")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    command = command_line("bench.active_learning", argv)
    settings = Settings.from_env()
    device = "cpu"
    labels, train, test = load_split(args.data)
    train, test = train[: args.train_docs], test[: args.test_docs]
    by_name = {lab.pref_label: lab.id for lab in labels}
    new_names = [n.strip() for n in (args.data / NEW_LABELS).read_text().splitlines() if n.strip()]
    new_ids = {by_name[n] for n in new_names}
    old_labels = [lab for lab in labels if lab.id not in new_ids]
    train_ids = list(range(len(train)))
    texts = {i: t for i, (t, _) in enumerate(train)}
    old_gold = {i: g - new_ids for i, (_, g) in enumerate(train)}
    oracle_gold = {i: g & new_ids for i, (_, g) in enumerate(train)}
    new_test = [(t, g & new_ids) for t, g in test if g & new_ids]
    old_test = [(t, g - new_ids) for t, g in test if g - new_ids]
    log(f"{len(new_ids)} new labels; {len(train)} train docs; {len(new_test)} test docs carry a new label")
    pretrained = default_encoder_path(settings.encoder_path)
    results: dict = {"machine": machine(), "command": command}

    # 1. The initial model, trained without the new labels.
    if args.initial:
        initial_bundle = args.initial
    else:
        fit = fit_bicross(pretrained, device, old_labels, [texts[i] for i in train_ids],
                          [old_gold[i] for i in train_ids], TrainConfig(), progress_printer("initial"))
        initial_bundle = write_bundle(ROOT / "var" / "bench", 0, "bicross", fit.ranker.save)
        results["initial_train_minutes"] = fit.stats["train_seconds"] / 60
    log(f"initial model: {initial_bundle}")
    if args.initial_only:
        return
    results["initial_bundle"] = str(initial_bundle)

    # 2. Pools: before (pretrained encoder) and after GPL (adapted encoder).
    new_names_by_id = {by_name[n]: n for n in new_names}
    positives = {lab: {d for d in train_ids if lab in oracle_gold[d]} for lab in new_ids}
    pools_by = {}
    for stage in ("before", "after"):
        encoder = load_bi_encoder(pretrained, device, 128)
        if stage == "after" and args.adapted:
            encoder = load_bi_encoder(args.adapted, device, 128)
            results["gpl"] = json.loads((args.adapted / "gpl_stats.json").read_text())
        elif stage == "after":
            teacher = load_ranker(initial_bundle, device).cross
            started = time.monotonic()
            docs = [(t.split(". ", 1)[0], t.split(". ", 1)[-1]) for t in (texts[i] for i in train_ids)]
            ex = mine(encoder, teacher, docs, TitleQueries(), GplConfig(), progress_printer("gpl-mine"))
            results["gpl"] = {**train_gpl(encoder, ex, GplConfig(), progress_printer("gpl")),
                              "total_seconds": time.monotonic() - started, "config": GplConfig().as_dict()}
            saved = ROOT / "var" / "bench" / f"gpl-{time.strftime('%Y%m%dT%H%M%S')}"
            encoder.save(str(saved))
            (saved / "gpl_stats.json").write_text(json.dumps(results["gpl"]))
            log(f"GPL: {results['gpl']}; adapted encoder saved to {saved}")
        doc_vecs = encode(encoder, [texts[i] for i in train_ids])
        label_vecs = dict(zip(new_names_by_id, encode(encoder, list(new_names_by_id.values())), strict=True))
        pools_by[stage] = build_pools(train_ids, doc_vecs, label_vecs, max(POOL_KS))
        results.setdefault("pool_recall", {})[stage] = {
            str(k): v for k, v in pool_recall(pools_by[stage], positives, POOL_KS).items()}
        log(f"pool recall {stage} GPL: {results['pool_recall'][stage]}")
    pools = {lab: p[: args.pool_size] for lab, p in pools_by["after"].items()}

    # 3. Active learning with the simulated oracle: greedy, then random as the control.
    new_test_texts, new_test_gold = [t for t, _ in new_test], [g for _, g in new_test]
    old_test_texts, old_test_gold = [t for t, _ in old_test], [g for _, g in old_test]
    for strategy in ("greedy",) if args.skip_random else ("greedy", "random"):
        ranker = load_ranker(initial_bundle, device, trainable=True)
        if strategy == "greedy":
            results["old_R@10_before"] = recall10(ranker, old_test_texts, old_test_gold, True)
            log(f"old-label R@10 before: {results['old_R@10_before']:.3f}")
        cfg = ALConfig(questions_per_iteration=args.per_iteration, strategy=strategy, lr=args.lr, cross_lr=args.cross_lr,
                       recall_ratio=args.recall_ratio, replay_ratio=args.replay_ratio)
        results.setdefault("al_config", cfg.as_dict())
        cycle = ActiveLearningCycle(ranker, texts, old_gold, new_names_by_id, pools, cfg, make_strategy(strategy))

        def measure(r: BiCrossRanker, it: int, strategy: str = strategy) -> dict:
            slow = strategy == "greedy" and (it % args.bicross_every == 0 or it == args.iterations)
            bicross = recall10(r, new_test_texts, new_test_gold, True) if slow else None
            return {"new_R@10_bi": recall10(r, new_test_texts, new_test_gold, False), "new_R@10_bicross": bicross}

        history = cycle.run(SimulatedOracle(oracle_gold), args.iterations, measure, progress_printer(strategy))
        curve = [{"iteration": h.number, "asked": h.asked, "yes": h.positives, "seconds": round(h.seconds, 1),
                  "phases": h.train.get("seconds", {}),
                  "answers_per_label": sum(x.asked for x in history[: i + 1]) / len(new_ids), **h.metrics}
                 for i, h in enumerate(history)]
        for row in curve:
            log(f"{strategy} {row}")
        if strategy == "greedy":
            results["curve"] = curve
            results["answers_per_label"] = float(np.mean(list(cycle.answers_per_label().values())))
            results["new_R@10_bi"] = curve[-1]["new_R@10_bi"]
            results["new_R@10_bicross"] = curve[-1]["new_R@10_bicross"]
            results["iteration_s_median"] = float(np.median([h.seconds for h in history[1:]]))
            results["old_R@10_after"] = recall10(ranker, old_test_texts, old_test_gold, True)
            log(f"old-label R@10 after: {results['old_R@10_after']:.3f}")
        else:
            results["random_curve"] = curve
            results["random_new_R@10"] = curve[-1]["new_R@10_bi"]
    if args.no_write:
        print(json.dumps(results, indent=2))
        return
    (ROOT / "bench" / "results" / f"{args.name}.json").write_text(json.dumps(results, indent=2))
    plot(results, ROOT / "bench" / "results" / f"{args.name}.png")
    update_benchmarks(args.name, render(results, args.name))
    log(f"wrote bench/results/{args.name}.json, {args.name}.png and BENCHMARKS.md")


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    x = [row["answers_per_label"] for row in r["curve"]]
    measured = [row for row in r["curve"] if row["new_R@10_bicross"] is not None]
    ax[0].plot([row["answers_per_label"] for row in measured], [row["new_R@10_bicross"] for row in measured], "o-",
               label="BiCross (greedy)")
    ax[0].plot(x, [row["new_R@10_bi"] for row in r["curve"]], "s-", label="bi-encoder (greedy)")
    if "random_curve" in r:
        ax[0].plot([row["answers_per_label"] for row in r["random_curve"]],
                   [row["new_R@10_bi"] for row in r["random_curve"]], "^--", label="bi-encoder (random)")
    ax[0].axhline(0.380, color="grey", ls=":", label="Annif Bonsai with all gold labels")
    ax[0].set(xlabel="oracle answers per new label", ylabel="new-label Recall@10", title="New labels")
    ax[0].legend()
    ks = [int(k) for k in r["pool_recall"]["before"]]
    ax[1].plot(ks, list(r["pool_recall"]["before"].values()), "o-", label="before GPL")
    ax[1].plot(ks, list(r["pool_recall"]["after"].values()), "s-", label="after GPL")
    ax[1].set(xlabel="pool size k", ylabel="share of train positives in pool", title="Pool recall")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def phase_medians(curve: list[dict]) -> str:
    phases = {}
    for row in curve[1:]:
        for k, v in row.get("phases", {}).items():
            phases.setdefault(k, []).append(v)
    return ", ".join(f"{k} {np.median(v):.1f} s" for k, v in phases.items())


def render(r: dict, name: str = "active_learning") -> str:
    lines = [
        f"## New labels by active learning (`bench/active_learning.py`{'' if name == 'active_learning' else ', ' + name})",
        "", f"AL settings: `{json.dumps(r.get('al_config', {}))}`.", "",
        f"Command: `{r['command']}` · machine: {r['machine']}.", "",
        "| answers per label | new R@10 bi (greedy) | new R@10 BiCross (greedy) | new R@10 bi (random) | seconds |",
        "|---|---|---|---|---|",
    ]
    random_curve = r.get("random_curve", [])
    for i, row in enumerate(r["curve"]):
        bicross = "" if row["new_R@10_bicross"] is None else f"{row['new_R@10_bicross']:.3f}"
        rand = f"{random_curve[i]['new_R@10_bi']:.3f}" if i < len(random_curve) else ""
        lines.append(f"| {row['answers_per_label']:.0f} | {row['new_R@10_bi']:.3f} | {bicross} | {rand} | {row['seconds']} |")
    pr = r["pool_recall"]
    lines += [
        "",
        f"- Old-label Recall@10 (BiCross, test): {r['old_R@10_before']:.3f} before, {r['old_R@10_after']:.3f} after.",
        "- Pool recall@k before/after GPL: " + ", ".join(
            f"k={k}: {pr['before'][k]:.3f} -> {pr['after'][k]:.3f}" for k in pr["before"]) + ".",
        *([f"- Random acquisition (control), final new-label R@10 (bi): {r['random_new_R@10']:.3f}."]
          if "random_new_R@10" in r else []),
        f"- Median wall time per AL iteration (re-rank pool heads + train): {r['iteration_s_median']:.1f} s "
        f"({phase_medians(r['curve'])}).",
        f"- GPL (title queries, {r['gpl'].get('triples', '?')} triples, {r['gpl'].get('steps', '?')} steps): "
        f"{r['gpl'].get('total_seconds', float('nan')) / 60:.1f} min.",
        f"- Plot: `bench/results/{name}.png`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
