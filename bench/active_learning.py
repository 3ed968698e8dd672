"""Benchmark of adding 30 new labels by active learning, on the PubMed/MeSH protocol.

Usage:
    python -m bench.active_learning --initial BUNDLE --ceiling BUNDLE [--iterations 20] [--gpl]
        [--train-docs N] [--test-docs N] [--no-write]
    python -m bench.active_learning --corpus tibkat [...]   # the same at a library's scale: bench.active_learning_tibkat

Protocol (../shared/data/README.md): the 30 labels of new_labels.txt are removed from TRAIN's gold
labels and from the taxonomy and the initial BiCross model is trained on that (``--initial-only``
trains it, as ``bench.ranking`` trains the ceiling: the same settings). The ceiling is the model
trained WITH the new labels' full TRAIN gold (``bench.ranking``'s bundle): what any number of answers
could buy. Active learning then asks a simulated oracle (TRAIN's real gold labels) with the app's
own campaign settings (:class:`core.newlabels.active_learning.ALConfig`'s defaults, pools of
:func:`core.newlabels.pools.default_pool_size`). New-label Recall@10 is measured on the TEST documents that
carry a new label, ranking over the full label set; the model's own check (new and old labels) runs
on the 10% of TRAIN that the initial model held out (never asked about, never replayed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, command_line, machine, update_benchmarks
from bench.ranking import load_split, log, progress_printer
from core.config import Settings
from core.data.demo import NEW_LABELS
from core.model.bicross import evaluate_ranker, fit_bicross, validation_split
from core.model.encoders import default_encoder_path, encode, load_bi_encoder
from core.model.loading import load_ranker
from core.model.ranker import BiCrossRanker
from core.model.training import TrainConfig
from core.model.versions import write_bundle
from core.newlabels.acquisition import make_strategy
from core.newlabels.active_learning import ActiveLearningCycle, ALConfig
from core.newlabels.gpl import GplConfig, TitleQueries, mine, train_gpl
from core.newlabels.oracle import SimulatedOracle
from core.newlabels.pools import build_pools, default_pool_size, pool_recall

POOL_KS = (100, 200, 400, 1000)
# Each row of the bench: greedy with the app's defaults (the reference), random (the control), and the changes tried.
VARIANTS = {"greedy": {}, "random": {"strategy": "random"}, "give_up": {"give_up_after": 10},
            "seen_after_1": {"seen_after": 1}, "sparse_refit": {"sparse_heads": False},
            "heads_c1_w1": {"head_c": 1.0, "head_positive_weight": 1.0}, "heads_w3": {"head_positive_weight": 3.0},
            "heads_w30": {"head_positive_weight": 30.0}, "heads_c1_w10": {"head_c": 1.0, "head_positive_weight": 10.0},
            "heads_w10": {"head_positive_weight": 10.0},
            "heads_c1_w30": {"head_c": 1.0, "head_positive_weight": 30.0}, "heads_w100": {"head_positive_weight": 100.0},
            "heads_balanced": {"head_c": 1.0, "head_positive_weight": 0.0}}
PEER = 0.380  # Annif's Bonsai trained with these labels' full TRAIN gold (same split and machine kind)


class Probe:
    """Recall@10 of one set of documents, their vectors computed once per bi-encoder state."""

    def __init__(self, texts: list[str], gold: list[set[int]]) -> None:
        self.texts, self.gold = texts, gold
        self._vectors: dict[int, np.ndarray] = {}

    def recall(self, ranker: BiCrossRanker, rerank: bool, fresh_vectors: bool = False,
               exclude: frozenset[int] = frozenset()) -> float:
        """Recall@10 (``exclude``: labels taken out of each ranking before its top 10 is read)."""
        if not self.texts:
            return float("nan")
        key = ranker.bi_path  # the bundle's bi-encoder (unchanged unless fresh_vectors)
        if fresh_vectors or key not in self._vectors:
            self._vectors = {key: ranker.embed_documents(self.texts)}
        return evaluate_ranker(ranker, self.texts, self.gold, k=10, metrics=("R@10",), doc_vectors=self._vectors[key],
                               exclude=exclude, rerank=rerank)["R@10"]


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["--corpus", "tibkat"]:
        from bench.active_learning_tibkat import main as tibkat

        tibkat(argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Settings.from_env().demo_data_dir)
    parser.add_argument("--train-docs", type=int, default=None)
    parser.add_argument("--test-docs", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--bicross-at", default="0,30,100", help="answers per label where BiCross is measured (slow)")
    parser.add_argument("--pool-size", type=int, default=0, help="0: the app's default_pool_size")
    parser.add_argument("--initial", type=Path, default=None, help="reuse a trained initial bundle")
    parser.add_argument("--ceiling", type=Path, default=None, help="bench.ranking's bundle (trained with every label)")
    parser.add_argument("--gpl", action="store_true", help="build the pools with a GPL-adapted encoder")
    parser.add_argument("--adapted", type=Path, default=None, help="reuse a GPL-adapted encoder saved by an earlier run")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"greedy first; any of {sorted(VARIANTS)}")
    parser.add_argument("--old-bicross-docs", type=int, default=100, help="TEST documents for the old-label BiCross check")
    parser.add_argument("--initial-only", action="store_true", help="train and save the initial model, then stop")
    parser.add_argument("--cross-max-examples", type=int, default=12000,
                        help="the cross-encoder's CPU budget, as bench.ranking's run of the ceiling model")
    parser.add_argument("--name", default="active_learning", help="results file and BENCHMARKS.md section")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--render", type=Path, help="only re-summarise a results file and rewrite its section and plot")
    args = parser.parse_args(argv)
    if args.render:
        results = json.loads(args.render.read_text())
        summarise(results)
        write(results, args.name)
        return
    command = command_line("bench.active_learning", argv)
    settings = Settings.from_env()
    device = "cpu"
    labels, train, test = load_split(args.data)
    train, test = train[: args.train_docs], test[: args.test_docs]
    by_name = {lab.pref_label: lab.id for lab in labels}
    new_names = [n.strip() for n in (args.data / NEW_LABELS).read_text().splitlines() if n.strip()]
    new_ids = {by_name[n] for n in new_names}
    old_labels = [lab for lab in labels if lab.id not in new_ids]
    texts = {i: t for i, (t, _) in enumerate(train)}
    old_gold = {i: g - new_ids for i, (_, g) in enumerate(train)}
    oracle_gold = {i: g & new_ids for i, (_, g) in enumerate(train)}
    pretrained = default_encoder_path(settings.encoder_path)
    results: dict = {"machine": machine(), "command": command}

    # 1. The initial model, trained without the new labels (the ceiling's settings).
    tcfg = TrainConfig(cross_max_examples=args.cross_max_examples)
    if args.initial:
        initial_bundle = args.initial
    else:
        fit = fit_bicross(pretrained, device, old_labels, [texts[i] for i in sorted(texts)],
                          [old_gold[i] for i in sorted(texts)], tcfg, progress_printer("initial"))
        initial_bundle = write_bundle(ROOT / "var" / "bench", 0, "bicross", fit.ranker.save)
        results["initial_train_minutes"] = fit.stats["train_seconds"] / 60
    log(f"initial model: {initial_bundle}")
    if args.initial_only:
        return
    results["initial_bundle"] = str(initial_bundle)

    # The initial model's own held-out slice of TRAIN (its fusion's validation documents) checks the campaign.
    al_ids, check_ids = validation_split(len(train), tcfg.validation_share, tcfg.seed)
    al_texts = {i: texts[i] for i in al_ids}
    new_test = Probe(*zip(*[(t, g & new_ids) for t, g in test if g & new_ids], strict=True))
    old_test = [(t, g - new_ids) for t, g in test if g - new_ids]
    old_probe = Probe([t for t, _ in old_test], [g for _, g in old_test])
    old_bicross = Probe([t for t, _ in old_test[: args.old_bicross_docs]], [g for _, g in old_test[: args.old_bicross_docs]])
    check_new = [(texts[i], oracle_gold[i]) for i in check_ids if oracle_gold[i]]
    check_new_probe = Probe([t for t, _ in check_new], [g for _, g in check_new])
    check_old_probe = Probe([texts[i] for i in check_ids if old_gold[i]], [old_gold[i] for i in check_ids if old_gold[i]])
    log(f"{len(new_ids)} new labels; {len(al_ids)} TRAIN documents to ask about, {len(check_ids)} held out "
        f"({len(check_new)} with a new label); {len(new_test.texts)} TEST documents carry a new label")
    results["documents"] = {"asked_from": len(al_ids), "held_out_train": len(check_ids),
                            "held_out_train_new": len(check_new), "test_new": len(new_test.texts),
                            "test_old": len(old_test)}

    # 2. The ceiling: the same model trained with every new label's full TRAIN gold.
    if args.ceiling:
        ceiling = load_ranker(args.ceiling, device)
        results["ceiling_bundle"] = str(args.ceiling)
        results["ceiling_new_R@10"] = new_test.recall(ceiling, True)
        results["ceiling_new_R@10_first"] = new_test.recall(ceiling, False)
        results["ceiling_heldout_new_R@10_first"] = check_new_probe.recall(ceiling, False)
        log(f"ceiling: new R@10 BiCross {results['ceiling_new_R@10']:.3f}, first stage "
            f"{results['ceiling_new_R@10_first']:.3f}")
        del ceiling

    # 3. Pools, as the app builds them: default_pool_size of the corpus asked about.
    new_names_by_id = {by_name[n]: n for n in new_names}
    positives = {lab: {d for d in al_ids if lab in oracle_gold[d]} for lab in new_ids}
    encoder = load_bi_encoder(pretrained, device, 128)
    if args.adapted:
        encoder = load_bi_encoder(args.adapted, device, 128)
        results["gpl"] = json.loads((args.adapted / "gpl_stats.json").read_text())
    elif args.gpl:
        teacher = load_ranker(initial_bundle, device).cross
        started = time.monotonic()
        docs = [(t.split(". ", 1)[0], t.split(". ", 1)[-1]) for t in al_texts.values()]
        ex = mine(encoder, teacher, docs, TitleQueries(), GplConfig(), progress_printer("gpl-mine"))
        results["gpl"] = {**train_gpl(encoder, ex, GplConfig(), progress_printer("gpl")),
                          "total_seconds": time.monotonic() - started, "config": GplConfig().as_dict()}
        saved = ROOT / "var" / "bench" / f"gpl-{time.strftime('%Y%m%dT%H%M%S')}"
        encoder.save(str(saved))
        (saved / "gpl_stats.json").write_text(json.dumps(results["gpl"]))
    doc_vecs = encode(encoder, [texts[i] for i in al_ids])
    label_vecs = dict(zip(new_names_by_id, encode(encoder, list(new_names_by_id.values())), strict=True))
    pool_size = args.pool_size or default_pool_size(len(al_ids))
    pools = build_pools(al_ids, doc_vecs, label_vecs, max(pool_size, *POOL_KS))
    results["pool_encoder"] = "GPL-adapted" if (args.gpl or args.adapted) else "pretrained"
    results["pool_size"] = pool_size
    results["pool_recall"] = {str(k): v for k, v in pool_recall(pools, positives, POOL_KS).items()}
    pools = {lab: p[:pool_size] for lab, p in pools.items()}
    log(f"pools of {pool_size}; recall@k {results['pool_recall']}")

    # 4. Active learning with the simulated oracle: greedy (the reference), random (the control), variants.
    bicross_at = [float(a) for a in args.bicross_at.split(",") if a]
    for variant in args.variants.split(","):
        ranker = load_ranker(initial_bundle, device, trainable=True)
        cfg = ALConfig(**VARIANTS[variant])
        if variant == "greedy":
            results["al_config"] = cfg.as_dict()
            results["old_R@10_before"] = old_probe.recall(ranker, False)
            results["old_R@10_bicross_before"] = old_bicross.recall(ranker, True)
        else:
            # The controls are read on the first stage, which the cross-encoder does not touch: no need to train it.
            ranker.cross = None
        cycle = ActiveLearningCycle(ranker, al_texts, {i: old_gold[i] for i in al_ids}, new_names_by_id, pools, cfg,
                                    make_strategy(cfg.strategy))
        measured_bicross: set[float] = set()

        def measure(r: BiCrossRanker, it: int, variant: str = variant, cycle: ActiveLearningCycle = cycle,
                    measured_bicross: set = measured_bicross) -> dict:
            fresh = cycle.cfg.learn_encoder and it > 0
            per_label = sum(h.asked for h in cycle.history) / len(new_ids)
            due = [a for a in bicross_at if a not in measured_bicross and (per_label >= a or it == args.iterations)]
            out = {"answers_per_label": per_label,
                   "new_R@10_first": new_test.recall(r, False, fresh),
                   "heldout_new_R@10": check_new_probe.recall(r, False, fresh),
                   "heldout_old_R@10": check_old_probe.recall(r, False, fresh),
                   "new_R@10_bicross": None}
            if variant == "greedy" and due and r.cross is not None:
                measured_bicross.update(due)
                out["new_R@10_bicross"] = new_test.recall(r, True)
            log(f"{variant} iteration {it}: {out}")
            return out

        history = cycle.run(SimulatedOracle(oracle_gold), args.iterations, measure, progress_printer(variant))
        curve = [{"iteration": h.number, "asked": h.asked, "yes": h.positives, "seconds": round(h.seconds, 1),
                  "phases": h.train.get("seconds", {}), **h.metrics} for h in history]
        results.setdefault("curves", {})[variant] = curve
        results.setdefault("answers_per_label", {})[variant] = float(np.mean(list(cycle.answers_per_label().values())))
        if variant == "greedy":
            results["iteration_s_median"] = float(np.median([h.seconds for h in history[1:]]))
            results["old_R@10_after"] = old_probe.recall(ranker, False, True)
            # The same, with the new labels taken out of the rankings: what the old labels' own scores lost.
            results["old_R@10_after_without_new"] = old_probe.recall(ranker, False, False, frozenset(new_ids))
            results["old_R@10_bicross_after"] = old_bicross.recall(ranker, True, True)
            log(f"old-label R@10 {results['old_R@10_before']:.3f} -> {results['old_R@10_after']:.3f}")
    results["old_bicross_docs"] = len(old_bicross.texts)
    summarise(results)
    if args.no_write:
        print(json.dumps(results, indent=2))
        return
    write(results, args.name)


def write(results: dict, name: str) -> None:
    (ROOT / "bench" / "results" / f"{name}.json").write_text(json.dumps(results, indent=2))
    plot(results, ROOT / "bench" / "results" / f"{name}.png")
    update_benchmarks(name, render(results, name))
    log(f"wrote bench/results/{name}.json, {name}.png and BENCHMARKS.md")


def at_answers(curve: list[dict], per_label: float, key: str) -> float | None:
    """``key`` at the last measured point with at most ``per_label`` answers per label."""
    points = [row[key] for row in curve if row["answers_per_label"] <= per_label + 1e-9 and row.get(key) is not None]
    return points[-1] if points else None


def summarise(r: dict) -> None:
    """The issue's keys: BiCross at 30 and 100 answers per label, the fraction of the ceiling, answers to 90%."""
    greedy = r["curves"]["greedy"]
    r["new_R@10_at_30"] = at_answers(greedy, 30, "new_R@10_bicross")
    r["new_R@10_at_100"] = at_answers(greedy, 100, "new_R@10_bicross")
    r["new_R@10_first_at_30"] = at_answers(greedy, 30, "new_R@10_first")
    r["new_R@10_first_at_100"] = at_answers(greedy, 100, "new_R@10_first")
    ceiling, ceiling_first = r.get("ceiling_new_R@10"), r.get("ceiling_new_R@10_first")
    if ceiling:
        r["fraction_of_ceiling"] = (r["new_R@10_at_100"] or 0.0) / ceiling
    if ceiling_first:
        r["fraction_of_ceiling_first"] = r["new_R@10_first_at_100"] / ceiling_first
        for curve in r["curves"].values():
            for row in curve:
                row["fraction_of_ceiling_first"] = row["new_R@10_first"] / ceiling_first
        for variant, curve in r["curves"].items():
            reached = [row["answers_per_label"] for row in curve if row["new_R@10_first"] >= 0.9 * ceiling_first]
            r.setdefault("answers_per_label_to_90pct_by_variant", {})[variant] = reached[0] if reached else None
        r["answers_per_label_to_90pct"] = r["answers_per_label_to_90pct_by_variant"]["greedy"]
    # The campaign's own check, per variant: what a setting may be chosen on (held-out TRAIN, never TEST).
    r["heldout_new_R@10_mean_by_variant"] = {v: float(np.mean([row["heldout_new_R@10"] for row in c[1:]]))
                                             for v, c in r["curves"].items() if len(c) > 1}
    both = [(row["new_R@10_bicross"], row["new_R@10_first"]) for row in greedy if row.get("new_R@10_bicross") is not None]
    if both:  # issue 26: the re-ranker never costs the new labels anything
        r["bicross_at_or_above_first_everywhere"] = all(b >= f - 1e-9 for b, f in both)
        r["bicross_minus_first_min"] = min(b - f for b, f in both)
    if "random" in r["curves"]:
        pairs = zip(greedy[1:], r["curves"]["random"][1:], strict=False)
        r["greedy_above_random_everywhere"] = all(g["new_R@10_first"] > x["new_R@10_first"] for g, x in pairs)


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(12, 4.2))
    styles = {"greedy": "s-", "random": "^--", "give_up": "o-.", "seen_after_1": "v:"}
    for variant, curve in r["curves"].items():
        ax[0].plot([row["answers_per_label"] for row in curve], [row["new_R@10_first"] for row in curve],
                   styles.get(variant, ".-"), label=f"first stage ({variant})")
    bicross = [row for row in r["curves"]["greedy"] if row.get("new_R@10_bicross") is not None]
    ax[0].plot([row["answers_per_label"] for row in bicross], [row["new_R@10_bicross"] for row in bicross], "D-",
               color="black", label="BiCross (greedy)")
    if r.get("ceiling_new_R@10"):
        ax[0].axhline(r["ceiling_new_R@10"], color="black", ls="--", label="ceiling: trained with full gold (BiCross)")
        ax[0].axhline(0.9 * r["ceiling_new_R@10"], color="black", ls=":", lw=0.8, label="90% of the ceiling")
    ax[0].axhline(PEER, color="grey", ls=":", label="Annif Bonsai with full gold")
    ax[0].set(xlabel="oracle answers per new label", ylabel="new-label Recall@10 (TEST)", title="New labels")
    ax[0].legend(fontsize=7)
    greedy = r["curves"]["greedy"]
    x = [row["answers_per_label"] for row in greedy]
    ax[1].plot(x, [row["heldout_old_R@10"] for row in greedy], "s-", label="old labels")
    ax[1].plot(x, [row["heldout_new_R@10"] for row in greedy], "o-", label="new labels")
    ax[1].set(xlabel="oracle answers per new label", ylabel="Recall@10, first stage",
              title="The campaign's check: held-out TRAIN documents")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def phase_medians(curve: list[dict]) -> str:
    phases: dict[str, list[float]] = {}
    for row in curve[1:]:
        for k, v in row.get("phases", {}).items():
            phases.setdefault(k, []).append(v)
    return ", ".join(f"{k} {np.median(v):.1f} s" for k, v in phases.items())


def _f(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def render(r: dict, name: str = "active_learning") -> str:
    curves = r["curves"]
    variants = list(curves)
    lines = [
        f"## New labels by active learning (`bench/active_learning.py`{'' if name == 'active_learning' else ', ' + name})",
        "", f"Command: `{r['command']}` · machine: {r['machine']}.", "",
        f"Campaign settings (the app's defaults): `{json.dumps(r['al_config'])}`; pools of {r['pool_size']} documents "
        f"per label ({r['pool_encoder']} encoder) from the {r['documents']['asked_from']} TRAIN documents asked about.",
        "", "| answers per label | " + " | ".join(f"new R@10 first stage ({v})" for v in variants)
        + " | greedy as a fraction of the ceiling (first stage) | new R@10 BiCross (greedy)"
          " | held-out TRAIN new / old R@10 (greedy) | seconds (greedy) |",
        "|---" * (len(variants) + 5) + "|",
    ]
    for i, row in enumerate(curves["greedy"]):
        firsts = [_f(curves[v][i]["new_R@10_first"]) if i < len(curves[v]) else "" for v in variants]
        lines.append(f"| {row['answers_per_label']:.0f} | " + " | ".join(firsts)
                     + f" | {_f(row.get('fraction_of_ceiling_first'))} | {_f(row['new_R@10_bicross'])}"
                       f" | {_f(row['heldout_new_R@10'])} / "
                       f"{_f(row['heldout_old_R@10'])} | {row['seconds']} |")
    lines += [
        "",
        f"- Ceiling (the same model trained with the new labels' full TRAIN gold): new R@10 BiCross "
        f"{_f(r.get('ceiling_new_R@10'))}, first stage {_f(r.get('ceiling_new_R@10_first'))}; "
        f"Annif 1.4.3 with full gold {PEER:.3f} (same split and machine kind, as given in issue 14).",
        f"- BiCross at 30 / 100 answers per label: {_f(r.get('new_R@10_at_30'))} / {_f(r.get('new_R@10_at_100'))} "
        f"({_f(r.get('fraction_of_ceiling'))} of the ceiling); answers per label to reach 90% of the ceiling "
        f"(first stage): " + ", ".join(f"{v} {x if x is not None else 'not reached'}"
                                       for v, x in r.get("answers_per_label_to_90pct_by_variant", {}).items()) + ".",
        f"- Old labels, first stage on {r['documents']['test_old']} TEST documents: {_f(r['old_R@10_before'])} before, "
        f"{_f(r['old_R@10_after'])} after ({_f(r.get('old_R@10_after_without_new'))} with the new labels taken out of "
        f"the rankings); BiCross on the first {r.get('old_bicross_docs', 100)}: "
        f"{_f(r['old_R@10_bicross_before'])} before, {_f(r['old_R@10_bicross_after'])} after.",
        f"- Greedy above random at every iteration (first stage): {r.get('greedy_above_random_everywhere')}. BiCross at "
        f"or above the first stage wherever both were measured: {r.get('bicross_at_or_above_first_everywhere')} "
        f"(smallest difference {_f(r.get('bicross_minus_first_min'))}).",
        "- Held-out TRAIN new-label R@10, mean over iterations 1.. (what settings are chosen on): " + ", ".join(
            f"{v} {x:.3f}" for v, x in r.get("heldout_new_R@10_mean_by_variant", {}).items()) + ".",
        f"- Median wall time per iteration (select + learn): {r['iteration_s_median']:.1f} s "
        f"({phase_medians(curves['greedy'])}).",
        "- Pool recall@k (share of a label's TRAIN positives inside its pool): "
        + ", ".join(f"k={k}: {v:.3f}" for k, v in r["pool_recall"].items()) + ".",
        f"- Plot: `bench/results/{name}.png`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
