"""Does more cross-encoder training close the gap? Continue a saved BiCross bundle's cross-encoder.

Usage: python -m bench.cross_more BUNDLE [--epochs 1] [--positives 4] [--seed 1]

Loads the bundle `bench.ranking` saved, trains its cross-encoder on fresh (document, label) pairs
from TRAIN (a new seed draws other positives and negatives), re-tunes the blend on the same
validation documents, and evaluates on TEST.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from bench.common import ROOT, command_line, machine, update_benchmarks
from bench.ranking import load_split, log, progress_printer
from core.config import Settings
from core.model.bicross import Validation, evaluate_ranker, fit_second_stage, validation_split
from core.model.loading import load_ranker
from core.model.ranker import BiCrossRanker
from core.model.training import TrainConfig, cross_examples, train_cross_encoder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--positives", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    command = command_line("bench.cross_more", argv)
    _, train, test = load_split(Settings.from_env().demo_data_dir)
    ranker: BiCrossRanker = load_ranker(args.bundle, "cpu")
    base = TrainConfig()
    tr, val = validation_split(len(train), base.validation_share, base.seed)  # the split the bundle was tuned on
    tr_texts, tr_gold = [train[i][0] for i in tr], [train[i][1] for i in tr]
    cfg = TrainConfig(cross_epochs=args.epochs, cross_positives_per_doc=args.positives, seed=args.seed,
                      cross_loss="pointwise")
    cand, _ = ranker.candidates(tr_texts, n=cfg.cross_top_k)
    examples = cross_examples(tr_gold, [list(r) for r in cand], cfg, random.Random(args.seed))
    stats = train_cross_encoder(ranker.cross, examples, tr_texts, ranker.table.text_map(), cfg, progress_printer("cross"))
    fusion = fit_second_stage(ranker, Validation([train[i][0] for i in val], [train[i][1] for i in val]))
    metrics = evaluate_ranker(ranker, [t for t, _ in test], [g for _, g in test], progress=progress_printer("eval"))
    log(f"after more cross-encoder training: {metrics} (fusion {fusion})")
    result = {"metrics": metrics, "fusion": fusion, "cross": stats, "epochs": args.epochs, "machine": machine(),
              "command": command}
    (ROOT / "bench" / "results" / "cross_more.json").write_text(json.dumps(result, indent=2))
    update_benchmarks("cross_more", render(result))


def render(r: dict) -> str:
    m, stats, fusion = r["metrics"], r["cross"], r["fusion"]
    epochs = r.get("epochs") or int(re.search(r"--epochs (\d+)", r["command"] + " --epochs 1").group(1))
    return f"""## More cross-encoder training (`bench/cross_more.py`)

Command: `{r['command']}` · machine: {r['machine']}. The bundle of `bench.ranking`, its cross-encoder trained
{epochs} more epoch(s) on {stats['examples']:,} fresh pairs ({stats['seconds'] / 60:.1f} min), blend re-tuned
(bi weight {fusion.get('bi_weight')}): P@1 {m['P@1']:.3f}, P@5 {m['P@5']:.3f}, R@10 {m['R@10']:.3f},
nDCG@10 {m['nDCG@10']:.3f}, R@30 {m['R@30']:.3f} on TEST."""


if __name__ == "__main__":
    main()
