"""Benchmark of the label ranking model on the canonical PubMed/MeSH split.

Usage:
    python -m bench.ranking [--data ../shared/data] [--train-docs N] [--test-docs N] [--no-write]

Trains on TRAIN (1,600 docs; 10% held out inside for tuning the score fusion), ranks over all
8,132 labels, evaluates on TEST (1,000 docs), and writes BENCHMARKS.md and bench/results/ranking.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, command_line, machine, update_benchmarks
from core.bicross import evaluate_ranker, fit_baseline, fit_bicross, make_label_table
from core.config import Settings
from core.demo import demo_taxonomy, read_demo_corpus
from core.encoders import default_encoder_path, load_bi_encoder
from core.index import ExactIndex
from core.metrics import evaluate
from core.ranker import BiCrossRanker
from core.reports import ImportReport
from core.taxonomy import LabelRow
from core.training import TrainConfig

SYSTEMS = ("zero_shot", "bi", "bicross", "baseline")


def load_split(data: Path) -> tuple[list[LabelRow], list, list]:
    """Labels (ids = row numbers) and (text, gold ids) for TRAIN and TEST."""
    taxonomy = demo_taxonomy(data)
    concepts = sorted(taxonomy.concepts.values(), key=lambda c: c.id)
    row = {c.id: i for i, c in enumerate(concepts)}
    by_name = {c.pref_label: row[c.id] for c in concepts}
    labels = [LabelRow(row[c.id], c.id, c.pref_label, tuple(c.alt_labels), tuple(row[p] for p in c.parents))
              for c in concepts]
    train, test = [], []
    for rec in read_demo_corpus(data, ImportReport()):
        item = (rec.text, {by_name[n] for n in rec.labels})
        (test if rec.split == "test" else train).append(item)
    return labels, train, test


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def progress_printer(name: str):
    last = [0.0]

    def report(fraction: float, message: str) -> None:
        if time.monotonic() - last[0] > 30 or fraction >= 1.0:
            last[0] = time.monotonic()
            log(f"{name} {fraction:5.1%} {message}")

    return report


def latency(ranker, texts: list[str], rerank: bool, n: int, batched: int = 200) -> tuple[float, float, float]:
    """Per-document p50/p95 seconds (one document per call) and docs/s over ``batched`` docs in batches of 32."""
    single = []
    for t in texts[:n]:
        s = time.perf_counter()
        ranker.rank([t], k=10, rerank=rerank)
        single.append(time.perf_counter() - s)
    s = time.perf_counter()
    for i in range(0, min(batched, len(texts)), 32):
        ranker.rank(texts[i:i + 32], k=10, rerank=rerank)
    throughput = min(batched, len(texts)) / (time.perf_counter() - s)
    return float(np.percentile(single, 50)), float(np.percentile(single, 95)), throughput


def hnsw_vs_exact(ranker: BiCrossRanker, doc_vecs: np.ndarray) -> dict[str, float]:
    exact = ExactIndex(ranker.vectors.shape[1])
    exact.add(ranker.table.ids, ranker.vectors)
    s = time.perf_counter()
    approx_ids, _ = ranker.index.search(doc_vecs, 30)
    t_hnsw = (time.perf_counter() - s) / len(doc_vecs)
    s = time.perf_counter()
    exact_ids, _ = exact.search(doc_vecs, 30)
    t_exact = (time.perf_counter() - s) / len(doc_vecs)
    agree = np.mean([len(set(a) & set(b)) / 30 for a, b in zip(approx_ids, exact_ids, strict=True)])
    return {"hnsw_agreement@30": float(agree), "hnsw_query_ms": t_hnsw * 1000, "exact_query_ms": t_exact * 1000}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Settings.from_env().demo_data_dir)
    parser.add_argument("--train-docs", type=int, default=None, help="subset for a smoke run")
    parser.add_argument("--test-docs", type=int, default=None)
    parser.add_argument("--latency-docs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--cross-positives", type=int, default=4)
    parser.add_argument("--baseline-epochs", type=int, default=8)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    command = command_line("bench.ranking", argv)
    import torch

    torch.manual_seed(0)
    settings = Settings.from_env()
    device = "cpu" if settings.device == "auto" and not torch.cuda.is_available() else settings.device
    labels, train, test = load_split(args.data)
    train, test = train[: args.train_docs], test[: args.test_docs]
    log(f"{len(labels)} labels, {len(train)} train docs, {len(test)} test docs, device {device}")
    test_texts, test_gold = [t for t, _ in test], [g for _, g in test]
    train_texts, train_gold = [t for t, _ in train], [g for _, g in train]
    pretrained = default_encoder_path(settings.encoder_path)
    results: dict = {"systems": {}}

    # Zero-shot: label names vs documents, pretrained all-MiniLM-L6-v2, no prior.
    zero = BiCrossRanker.build(load_bi_encoder(pretrained, device, 128), make_label_table(labels, train_gold))
    results["systems"]["zero_shot"] = evaluate_ranker(zero, test_texts, test_gold, progress=progress_printer("zero"))
    log(f"zero-shot {results['systems']['zero_shot']}")

    cfg = TrainConfig(epochs=args.epochs, cross_positives_per_doc=args.cross_positives,
                      baseline_epochs=args.baseline_epochs)
    fit = fit_bicross(pretrained, device, labels, train_texts, train_gold, cfg, progress_printer("bicross"))
    ranker: BiCrossRanker = fit.ranker
    results["train_minutes"] = fit.stats["train_seconds"] / 60
    results["bicross_training"] = {k: v for k, v in fit.stats.items() if k in ("bi", "cross")}
    results["fusion"] = {"prior_weight": ranker.fusion.prior_weight, "lexical_weight": ranker.fusion.lexical_weight,
                         "bi_weight": ranker.fusion.bi_weight}
    if not args.no_write:  # kept for re-evaluation without retraining
        from core.versions import write_bundle

        results["bundle"] = str(write_bundle(ROOT / "var" / "bench", 0, "bicross", ranker.save))
    log(f"trained in {results['train_minutes']:.1f} min; fusion {results['fusion']}")

    doc_vecs = ranker.embed_documents(test_texts)
    results.update(hnsw_vs_exact(ranker, doc_vecs))
    names = ("P@1", "P@5", "R@10", "nDCG@10", "R@30")
    hits = ranker.lexical_hits(test_texts)
    bi_rankings = [[int(i) for i in r if i >= 0] for r in ranker.candidates(doc_vecs, lexical=hits)[0]]
    results["systems"]["bi"] = evaluate(bi_rankings, test_gold, names)
    for key, w, lw in (("bi_model_only", 0.0, 0.0), ("bi_prior_only", None, 0.0)):
        ids = ranker.candidates(doc_vecs, prior_weight=w, lexical=hits, lexical_weight=lw)[0]
        results["systems"][key] = evaluate([[int(i) for i in r if i >= 0] for r in ids], test_gold, names)
    results["candidate_recall"] = {  # the ceiling a wider re-ranking would have
        str(n): evaluate([[int(i) for i in r if i >= 0] for r in ranker.candidates(doc_vecs, n=n, lexical=hits)[0]],
                         test_gold, (f"R@{n}",))[f"R@{n}"] for n in (30, 50, 100)}
    results["systems"]["bicross"] = evaluate_ranker(ranker, test_texts, test_gold, progress=progress_printer("eval"))
    log(f"bi {results['systems']['bi']}\nbicross {results['systems']['bicross']}")

    ranker.timings = {"bi": 0.0, "cross": 0.0}
    p50, p95, tput = latency(ranker, test_texts, True, args.latency_docs)
    share_cross = ranker.timings["cross"] / max(1e-9, ranker.timings["bi"] + ranker.timings["cross"])
    bp50, bp95, btput = latency(ranker, test_texts, False, args.latency_docs)
    results.update(latency_p50_s=p50, latency_p95_s=p95, throughput_docs_per_s=tput, bi_latency_p50_s=bp50,
                   bi_latency_p95_s=bp95, bi_throughput_docs_per_s=btput, cross_share_of_time=share_cross)
    log(f"latency bicross p50 {p50:.3f}s p95 {p95:.3f}s {tput:.1f} docs/s; bi p50 {bp50:.3f}s {btput:.1f} docs/s")

    base = fit_baseline(pretrained, device, labels, train_texts, train_gold, cfg, progress_printer("baseline"))
    results["baseline_train_minutes"] = base.stats["baseline"]["seconds"] / 60
    results["systems"]["baseline"] = evaluate_ranker(base.ranker, test_texts, test_gold)
    log(f"baseline {results['systems']['baseline']}")

    results["machine"] = machine()
    results["command"] = command
    results["split"] = {"train": len(train), "test": len(test), "labels": len(labels)}
    results["config"] = cfg.as_dict()
    if args.no_write:
        print(json.dumps(results, indent=2))
        return
    out = ROOT / "bench" / "results" / "ranking.json"
    out.write_text(json.dumps(results, indent=2))
    update_benchmarks("ranking", render(results))
    log(f"wrote {out} and BENCHMARKS.md")


PEERS = {
    "zero-shot all-MiniLM-L6-v2 (peer figure)": (0.542, 0.296, 0.180, 0.283),
    "Annif Omikuji Bonsai (best single backend)": (0.783, 0.532, 0.292, 0.471),
    "Annif tuned ensemble": (0.897, 0.663, 0.411, 0.611),
}


def render(r: dict) -> str:
    s = r["systems"]
    names = {"zero_shot": "zero-shot bi-encoder (ours)", "bi_model_only": "trained bi-encoder alone (cosine)",
             "bi_prior_only": "trained bi-encoder + label prior",
             "bi": "trained bi-encoder + label prior + lexical matches",
             "bicross": "BiCross (bi top-30 -> cross-encoder, fused)",
             "baseline": "classifier-head baseline"}
    lines = [
        "## Label ranking model (`bench/ranking.py`)",
        "",
        f"Command: `{r['command']}` · machine: {r['machine']} · split: {r['split']['train']} train / "
        f"{r['split']['test']} test docs, ranking over {r['split']['labels']:,} labels.",
        "",
        "| system | P@1 | P@5 | R@10 | nDCG@10 | R@30 |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in names.items():
        m = s[key]
        lines.append(f"| {label} | {m['P@1']:.3f} | {m['P@5']:.3f} | {m['R@10']:.3f} | {m['nDCG@10']:.3f} | "
                     f"{m['R@30']:.3f} |")
    for label, (p1, p5, r10, n10) in PEERS.items():
        lines.append(f"| {label} | {p1:.3f} | {p5:.3f} | {r10:.3f} | {n10:.3f} | |")
    c = r["config"]
    lines += [
        "",
        f"- Training (bi-encoder + cross-encoder): {r['train_minutes']:.1f} min "
        f"(bi: {r['bicross_training'].get('bi', {}).get('steps', 0)} steps, "
        f"cross: {r['bicross_training'].get('cross', {}).get('examples', 0)} pairs); "
        f"baseline: {r['baseline_train_minutes']:.1f} min. Settings: epochs {c['epochs']}, batch {c['batch_size']}, "
        f"seq {c['max_seq_length']}, cross seq {c['cross_max_length']}, {c['cross_positives_per_doc']} positives "
        f"+ {c['cross_negatives']} negatives each per document, baseline epochs {c['baseline_epochs']}.",
        f"- Score fusion tuned on 10% of TRAIN (nDCG@10): prior weight {r['fusion']['prior_weight']}, lexical weight "
        f"{r['fusion']['lexical_weight']}, bi weight in the final blend {r['fusion']['bi_weight']}.",
        f"- HNSW vs exact top-30 agreement: {r['hnsw_agreement@30']:.4f} "
        f"(query {r['hnsw_query_ms']:.2f} ms vs {r['exact_query_ms']:.2f} ms per document).",
        f"- Latency per document (one per call): BiCross p50 {r['latency_p50_s']:.3f} s, p95 "
        f"{r['latency_p95_s']:.3f} s; bi-only p50 {r['bi_latency_p50_s']:.3f} s. Batched throughput: BiCross "
        f"{r['throughput_docs_per_s']:.1f} docs/s, bi-only {r['bi_throughput_docs_per_s']:.1f} docs/s. "
        f"The cross-encoder takes {r['cross_share_of_time']:.0%} of BiCross time (30 label-document pairs of "
        f"up to {c['cross_max_length']} tokens per document).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
