"""Benchmark of the label ranking model on the canonical PubMed/MeSH split.

Usage:
    python -m bench.ranking [--data ../shared/data] [--train-docs N] [--test-docs N] [--no-write]

Trains on TRAIN (1,600 docs; 10% held out inside for tuning the score fusion), ranks over all
8,132 labels, evaluates on TEST (1,000 docs), and writes BENCHMARKS.md and bench/results/ranking.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, command_line, machine, update_benchmarks
from core.config import Settings
from core.data.concepts import LabelRow
from core.data.demo import demo_taxonomy, read_demo_corpus
from core.data.reports import ImportReport
from core.model.bicross import MIN_RERANK_GAIN, evaluate_ranker, fit_baseline, fit_bicross, make_label_table
from core.model.encoders import default_encoder_path, default_reranker_path, load_bi_encoder
from core.model.index import ExactIndex
from core.model.loading import load_ranker
from core.model.metrics import evaluate
from core.model.ranker import BiCrossRanker
from core.model.training import TrainConfig

SYSTEMS = ("zero_shot", "bi", "bicross", "baseline")


def load_split(data: Path) -> tuple[list[LabelRow], list, list]:
    """Labels (ids = row numbers) and (text, gold ids) for TRAIN and TEST."""
    taxonomy = demo_taxonomy(data)
    concepts = sorted((c for c in taxonomy.concepts.values() if not c.extra.get("grouping")), key=lambda c: c.id)
    row = {c.id: i for i, c in enumerate(concepts)}
    by_name = {c.pref_label: row[c.id] for c in concepts}
    labels = [LabelRow(row[c.id], c.id, c.pref_label, tuple(c.alt_labels), tuple(row[p] for p in c.parents if p in row))
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


RUNTIMES = ("torch", "onnx", "onnx-int8")
NAMES = ("P@1", "P@5", "R@10", "nDCG@10", "R@30")


def scores_with_split(rankings: list[list[int]], gold: list[set[int]], unseen: set[int]) -> dict[str, float]:
    """The usual metrics, plus R@10 on the gold labels seen in TRAIN and on those never seen there."""
    out = evaluate(rankings, gold, NAMES)
    out["R@10_seen"] = evaluate(rankings, [g - unseen for g in gold], ("R@10",))["R@10"]
    out["R@10_unseen"] = evaluate(rankings, [g & unseen for g in gold], ("R@10",))["R@10"]
    return out


def order(ids: np.ndarray, scores: np.ndarray) -> list[int]:
    return [int(i) for i in ids[np.argsort(-scores, kind="stable")]]


class CrossCache:
    """Cross-encoder logits per (document, label), so ablation rows that shortlist the same pair share it."""

    def __init__(self, ranker: BiCrossRanker, texts: list[str]) -> None:
        self.ranker, self.texts, self.cache = ranker, texts, {}

    def logits(self, shortlists: list) -> list[np.ndarray]:
        missing = [(d, int(i)) for d, c in enumerate(shortlists) for i in c.ids if (d, int(i)) not in self.cache]
        if missing:
            labels = [self.ranker.table.text(i) for _, i in missing]
            flat = self.ranker.cross.logits_np(labels, [self.texts[d] for d, _ in missing])
            self.cache.update(zip(missing, flat.tolist(), strict=True))
        return [np.array([self.cache[(d, int(i))] for i in c.ids], dtype=np.float32) for d, c in enumerate(shortlists)]


def ablation(ranker: BiCrossRanker, texts: list[str], gold: list[set[int]], unseen: set[int],
             minutes: dict[str, float]) -> tuple[dict, dict]:
    """Every row of the ablation on the same candidates, and the merged candidates' recall."""
    fusion = ranker.fusion
    sets = ranker.candidate_sets(texts)
    rows: dict[str, dict] = {}

    def row(name: str, rankings: list[list[int]], train_min: float) -> None:
        rows[name] = {**scores_with_split(rankings, gold, unseen), "train_minutes": train_min}
        log(f"{name}: " + " ".join(f"{k} {v:.3f}" for k, v in rows[name].items()))

    bi_min = minutes["bi"]
    row("sparse_alone", [order(c.ids, c.column("sparse")) for c in sets], minutes["sparse"])
    row("neighbours_alone", [order(c.ids, c.column("neighbours")) for c in sets], bi_min)
    row("dense_alone", [order(c.ids, c.column("cosine")) for c in sets], bi_min)
    blend_first = [fusion.blend.first_stage(c) for c in sets]
    row("merged_blend", [order(c.ids, f) for c, f in zip(sets, blend_first, strict=True)],
        bi_min + minutes["sparse"] + minutes["first"])
    learned_first = [fusion.first_stage(c) for c in sets] if fusion.first is not None else blend_first
    row("merged_learned", [order(c.ids, f) for c, f in zip(sets, learned_first, strict=True)],
        bi_min + minutes["sparse"] + minutes["first"])
    recall = {str(n): evaluate([order(c.ids, f)[:n] for c, f in zip(sets, learned_first, strict=True)], gold,
                               (f"R@{n}",))[f"R@{n}"] for n in (30, 50, 100)}
    recall["all"] = evaluate([list(c.ids) for c in sets], gold, ("R@100000",))["R@100000"]
    recall["mean_candidates"] = float(np.mean([len(c.ids) for c in sets]))
    if ranker.cross is not None:
        n = fusion.candidates
        full = bi_min + minutes["sparse"] + minutes["first"] + minutes["cross"] + minutes["second"]
        heads, head_first = zip(*(c.top(f, n) for c, f in zip(sets, learned_first, strict=True)), strict=True)
        logits = CrossCache(ranker, texts).logits(heads)
        rows["_logits"] = logits  # kept for the runtime comparison, not written
        rows["_heads"] = heads
        row("cross_alone", [order(h.ids, lg) for h, lg in zip(heads, logits, strict=True)], full)
        # The blend of the fallback, on the same shortlist: (1 - b) * cross + b * blended first stage.
        blend_finals = [fusion.blend.final(fusion.blend.first_stage(h), lg)
                        for h, lg in zip(heads, logits, strict=True)]
        row("cross_blend", [order(h.ids, sc) for h, sc in zip(heads, blend_finals, strict=True)], full)
        finals = [fusion.final(h, f, lg) for h, f, lg in zip(heads, head_first, logits, strict=True)]
        row("cross_learned", [order(h.ids, sc) for h, sc in zip(heads, finals, strict=True)], full)
        # What the bundle serves: the re-ranked order only where its rule (fitted on validation) re-ranks.
        chosen = [fusion.unsure(f) for f in head_first]
        row("served_rule", [order(h.ids, sc) if c else [int(i) for i in h.ids]
                            for h, sc, c in zip(heads, finals, chosen, strict=True)], full)
        rows["served_rule"]["rule"] = fusion.rerank
        rows["served_rule"]["share_reranked"] = float(np.mean(chosen)) if chosen else 0.0
    return rows, recall


def runtime_rows(bundle: Path, texts: list[str], gold: list[set[int]], unseen: set[int], n_latency: int,
                 runtimes: tuple[str, ...], torch_rows: dict, quality_docs: dict[str, int]) -> dict[str, dict]:
    """Quality, latency and throughput of the saved bundle with each cross-encoder runtime (CPU).

    Every runtime ranks the same shortlists as PyTorch did in the ablation (``torch_rows``): its quality on the
    first ``quality_docs[runtime]`` TEST documents (all by default) beside PyTorch's on the same documents, and
    the largest logit difference from PyTorch.
    """
    out = {}
    heads, torch_logits = torch_rows["_heads"], torch_rows["_logits"]
    for runtime in runtimes:
        os.environ["XMTC_CROSS_RUNTIME"] = runtime
        ranker = load_ranker(bundle, "cpu")
        if ranker.cross is None:
            break
        n = quality_docs.get(runtime, len(texts))
        logits = torch_logits[:n] if runtime == "torch" else CrossCache(ranker, texts[:n]).logits(heads[:n])
        firsts = [ranker.fusion.first_stage(h) for h in heads[:n]]
        finals = [ranker.fusion.final(h, f, lg) for h, f, lg in zip(heads[:n], firsts, logits, strict=True)]
        quality = scores_with_split([order(h.ids, sc) for h, sc in zip(heads[:n], finals, strict=True)], gold[:n], unseen)
        reference = [ranker.fusion.final(h, f, lg) for h, f, lg in zip(heads[:n], firsts, torch_logits[:n], strict=True)]
        torch_quality = scores_with_split([order(h.ids, sc) for h, sc in zip(heads[:n], reference, strict=True)],
                                          gold[:n], unseen)
        top10 = np.mean([len(set(order(h.ids, a)[:10]) & set(order(h.ids, b)[:10])) / 10
                         for h, a, b in zip(heads[:n], finals, reference, strict=True)])
        diff = max(float(np.abs(a - b).max()) for a, b in zip(logits, torch_logits[:n], strict=True) if len(a))
        ranker.timings = {"bi": 0.0, "cross": 0.0}
        p50, p95, tput = latency(ranker, texts, True, n_latency)
        share = ranker.timings["cross"] / max(1e-9, ranker.timings["bi"] + ranker.timings["cross"])
        out[runtime] = {**quality, "quality_docs": n, "torch_on_same_docs": torch_quality, "top10_agreement": top10,
                        "max_logit_diff": diff, "latency_p50_s": p50, "latency_p95_s": p95,
                        "throughput_docs_per_s": tput, "cross_share_of_time": share}
        log(f"runtime {runtime}: " + " ".join(f"{k} {v:.3f}" for k, v in out[runtime].items() if isinstance(v, float)))
    os.environ.pop("XMTC_CROSS_RUNTIME", None)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Settings.from_env().demo_data_dir)
    parser.add_argument("--train-docs", type=int, default=None, help="subset for a smoke run")
    parser.add_argument("--test-docs", type=int, default=None)
    parser.add_argument("--latency-docs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--cross-init", default="", help="reranker, reranker-l6, encoder or a checkpoint folder")
    parser.add_argument("--cross-negatives", type=int, default=TrainConfig.cross_negatives)
    parser.add_argument("--cross-epochs", type=int, default=1)
    parser.add_argument("--cross-max-examples", type=int, default=0, help="0: every positive with its negatives")
    parser.add_argument("--bi-leftover-pass", action="store_true")
    parser.add_argument("--no-train-bi", action="store_true", help="keep the pretrained bi-encoder (a smoke run)")
    parser.add_argument("--baseline-epochs", type=int, default=8)
    parser.add_argument("--no-baseline", action="store_true", help="keep the baseline row of the last run")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--fp32-quality-docs", type=int, default=300, help="TEST documents scored with ONNX fp32")
    parser.add_argument("--output", default="ranking.json", help="file name under bench/results/")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--render", type=Path, help="only (re)write the BENCHMARKS.md section of a results file")
    args = parser.parse_args(argv)
    if args.render:
        r = json.loads(args.render.read_text())
        if "served_latency_p50_s" not in r and "latency_p50_s" in r:  # written before the key had its own name
            r["served_latency_p50_s"] = r["latency_p50_s"]
            args.render.write_text(json.dumps(r, indent=2, default=str))
        update_benchmarks(args.render.stem, render(r))
        return
    command = command_line("bench.ranking", argv)
    import torch

    torch.manual_seed(0)
    settings = Settings.from_env()
    device = "cpu" if settings.device == "auto" and not torch.cuda.is_available() else settings.device
    if device == "auto":
        device = "cuda"
    labels, train, test = load_split(args.data)
    train, test = train[: args.train_docs], test[: args.test_docs]
    log(f"{len(labels)} labels, {len(train)} train docs, {len(test)} test docs, device {device}")
    test_texts, test_gold = [t for t, _ in test], [g for _, g in test]
    train_texts, train_gold = [t for t, _ in train], [g for _, g in train]
    pretrained = default_encoder_path(settings.encoder_path)
    cross_init = default_reranker_path(args.cross_init or settings.reranker_path, pretrained)
    out_file = ROOT / "bench" / "results" / args.output
    previous = json.loads(out_file.read_text()) if out_file.is_file() else {}
    results: dict = {"systems": {}}

    # Zero-shot: label names vs documents, pretrained encoder, cosine only.
    zero = BiCrossRanker.build(load_bi_encoder(pretrained, device, 128), make_label_table(labels, train_gold))
    results["systems"]["zero_shot"] = evaluate_ranker(zero, test_texts, test_gold, progress=progress_printer("zero"))
    log(f"zero-shot {results['systems']['zero_shot']}")
    del zero

    cfg = TrainConfig(train_bi=not args.no_train_bi, epochs=args.epochs, cross_negatives=args.cross_negatives,
                      cross_epochs=args.cross_epochs, cross_max_examples=args.cross_max_examples,
                      bi_leftover_pass=args.bi_leftover_pass, baseline_epochs=args.baseline_epochs)
    fit = fit_bicross(pretrained, device, labels, train_texts, train_gold, cfg, progress_printer("bicross"),
                      cross_init=cross_init)
    ranker: BiCrossRanker = fit.ranker
    stats = fit.stats
    results["train_minutes"] = stats["train_seconds"] / 60
    results["bicross_training"] = {k: v for k, v in stats.items() if k in ("bi", "cross")}
    results["fusion"] = {k: v for k, v in stats.items() if k not in ("bi", "cross")}
    minutes = {"bi": stats.get("bi", {}).get("seconds", 0) / 60, "sparse": stats.get("sparse_seconds", 0) / 60,
               "cross": stats.get("cross", {}).get("seconds", 0) / 60,
               "first": stats.get("first_seconds", 0) / 60, "second": stats.get("second_seconds", 0) / 60}
    results["stage_minutes"] = minutes
    from core.model.versions import write_bundle

    bundle = write_bundle(ROOT / "var" / "bench", 0, "bicross", ranker.save)
    results["bundle"] = str(bundle)
    log(f"trained in {results['train_minutes']:.1f} min ({minutes}); bundle {bundle}")

    unseen = {int(i) for i, f in zip(ranker.table.ids, ranker.table.freq, strict=True) if f == 0}
    results["unseen_labels"] = {"labels": len(unseen), "test_assignments": sum(len(g & unseen) for g in test_gold),
                                "test_assignments_total": sum(len(g) for g in test_gold)}
    results["hnsw"] = hnsw_vs_exact(ranker, ranker.embed_documents(test_texts))
    rows, recall = ablation(ranker, test_texts, test_gold, unseen, minutes)
    results["ablation"] = {k: v for k, v in rows.items() if not k.startswith("_")}
    results["candidate_recall"] = recall
    results["systems"].update({"bi_model_only": rows["dense_alone"], "sparse_alone": rows["sparse_alone"],
                               "bi": rows["merged_learned"]})
    results["systems"]["bicross"] = results["ablation"].get("served_rule", rows["merged_learned"])
    if "cross_learned" in rows:  # the re-ranker's worth, on TEST, against the same bundle's first stage
        first_ndcg = rows["merged_learned"]["nDCG@10"]
        results["second_stage_gain_nDCG@10"] = rows["served_rule"]["nDCG@10"] - first_ndcg
        results["second_stage_gain_every_doc_nDCG@10"] = rows["cross_learned"]["nDCG@10"] - first_ndcg
        results["rerank_rule"] = {k: stats.get(k) for k in ("rerank_rule", "rerank_gain", "rerank_share", "rerank_gains")}
        results["rerank_share_test"] = rows["served_rule"]["share_reranked"]
    if device == "cpu":
        results["runtimes"] = runtime_rows(bundle, test_texts, test_gold, unseen, args.latency_docs,
                                           tuple(r for r in args.runtimes.split(",") if r), rows,
                                           {"onnx": args.fp32_quality_docs})
        serving = ranker.cross.cpu_runtime if ranker.cross is not None else "torch"
        results["serving_runtime"] = serving
        chosen = results["runtimes"].get(serving) or next(iter(results["runtimes"].values()), {})
    else:
        ranker.timings = {"bi": 0.0, "cross": 0.0}
        p50, p95, tput = latency(ranker, test_texts, True, args.latency_docs)
        results["serving_runtime"] = "torch (CUDA)"
        chosen = {"latency_p50_s": p50, "latency_p95_s": p95, "throughput_docs_per_s": tput}
    results.update({k: chosen[k] for k in ("latency_p50_s", "latency_p95_s", "throughput_docs_per_s") if k in chosen})
    results["served_latency_p50_s"] = results.get("latency_p50_s")  # the bundle as served: its rule followed
    ranker.timings = {"bi": 0.0, "cross": 0.0}
    bp50, bp95, btput = latency(ranker, test_texts, False, args.latency_docs)
    results.update(bi_latency_p50_s=bp50, bi_latency_p95_s=bp95, bi_throughput_docs_per_s=btput)

    if args.no_baseline and "baseline" in previous.get("systems", {}):
        results["systems"]["baseline"] = previous["systems"]["baseline"]
        results["baseline_train_minutes"] = previous.get("baseline_train_minutes")
        results["baseline_from"] = previous.get("baseline_from") or previous.get("command", "an earlier run")
    else:
        base = fit_baseline(pretrained, device, labels, train_texts, train_gold, cfg, progress_printer("baseline"))
        results["baseline_train_minutes"] = base.stats["baseline"]["seconds"] / 60
        results["systems"]["baseline"] = evaluate_ranker(base.ranker, test_texts, test_gold)
        log(f"baseline {results['systems']['baseline']}")

    results["machine"] = machine()
    results["command"] = command
    results["split"] = {"train": len(train), "test": len(test), "labels": len(labels)}
    results["config"] = cfg.as_dict()
    results["cross_init"] = cross_init
    if args.no_write:
        print(json.dumps(results, indent=2, default=str))
        return
    out_file.write_text(json.dumps(results, indent=2, default=str))
    update_benchmarks(out_file.stem, render(results))
    log(f"wrote {out_file}")


# Peers' figures are not measured by this bench: each row names where it comes from.
PEERS = {
    "zero-shot all-MiniLM-L6-v2 (peer figure: same split and machine kind, as given in issue 13)": (0.542, 0.296, 0.180, 0.283),
    "Annif 1.4.3 Omikuji Bonsai, best single backend (same split and machine kind, as given in issue 13)":
        (0.783, 0.532, 0.292, 0.471),
    "Annif 1.4.3 tuned ensemble (same split and machine kind, as given in issue 13)": (0.897, 0.663, 0.411, 0.611),
}


ROWS = {
    "zero_shot": "zero-shot bi-encoder (pretrained, cosine)",
    "sparse_alone": "sparse backend alone (TF-IDF + Omikuji Bonsai)",
    "neighbours_alone": "nearest training documents alone (dense kNN)",
    "dense_alone": "trained bi-encoder alone (cosine)",
    "merged_blend": "merged candidates, weighted blend",
    "merged_learned": "merged candidates, learned first stage (LambdaMART)",
    "cross_alone": "cross-encoder alone on the learned shortlist",
    "cross_blend": "+ cross-encoder, weighted blend (same shortlist)",
    "cross_learned": "BiCross: + cross-encoder, learned fusion, every document re-ranked",
    "served_rule": "**BiCross as served: re-ranked where the bundle's rule says it pays**",
}


def _cell(m: dict, key: str) -> str:
    v = m.get(key)
    return "" if v is None else f"{v:.3f}"


def render(r: dict) -> str:
    s, a = r["systems"], r["ablation"]
    rows = {"zero_shot": s["zero_shot"], **a}
    on_gpu = "CUDA" in r["machine"]
    lines = [
        "## Label ranking model (`bench/ranking.py`)" + (" on a GPU" if on_gpu else ""),
        "",
        f"Command: `{r['command']}` · machine: {r['machine']} · split: {r['split']['train']} train / "
        f"{r['split']['test']} test docs, ranking over {r['split']['labels']:,} labels; "
        f"{r['unseen_labels']['test_assignments']:,} of the {r['unseen_labels']['test_assignments_total']:,} TEST gold "
        "assignments are labels with no TRAIN document (\"unseen\").",
        "",
        "| system | P@1 | P@5 | R@10 | nDCG@10 | R@30 | R@10 seen | R@10 unseen | training min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, label in ROWS.items():
        if key in rows:
            m = rows[key]
            lines.append(f"| {label} | " + " | ".join(_cell(m, k) for k in (*NAMES, "R@10_seen", "R@10_unseen"))
                         + f" | {m.get('train_minutes', 0) or 0:.1f} |")
    b = s["baseline"]
    note = " (from an earlier run)" if r.get("baseline_from") else ""
    lines.append(f"| classifier-head baseline{note} | " + " | ".join(_cell(b, k) for k in NAMES)
                 + f" | | | {r.get('baseline_train_minutes') or 0:.1f} |")
    for label, (p1, p5, r10, n10) in PEERS.items():
        lines.append(f"| {label} | {p1:.3f} | {p5:.3f} | {r10:.3f} | {n10:.3f} | | | | |")
    c, f, rec = r["config"], r["fusion"], r["candidate_recall"]
    cross = r["bicross_training"].get("cross", {})
    bi = r["bicross_training"].get("bi", {})
    lines += [
        "",
        f"- Training, all parts: {r['train_minutes']:.1f} min (bi-encoder {r['stage_minutes']['bi']:.1f}, sparse backend "
        f"{r['stage_minutes']['sparse']:.2f}, cross-encoder {r['stage_minutes']['cross']:.1f}, fusion "
        f"{r['stage_minutes']['first'] + r['stage_minutes']['second']:.1f}). Bi-encoder: {bi.get('steps', 0)} steps, "
        f"{bi.get('pairs_placed', 0):,} of {bi.get('pairs', 0):,} pairs placed in conflict-free batches. Cross-encoder "
        f"from `{Path(r['cross_init']).name}`: {cross.get('examples', 0):,} pairs ({c['cross_negatives']} hard negatives "
        f"per positive from the merged candidates' top {c['cross_top_k']}), {c['cross_epochs']} epoch(s), final loss "
        f"{cross.get('final_loss', float('nan')):.3f}.",
        f"- Merged candidates (HNSW top {100}, the {20} most frequent labels, names in the text, the sparse backend's "
        f"top {c['sparse_candidates']}, the labels of the {c['neighbours']} nearest training documents): "
        f"{rec['mean_candidates']:.0f} per document holding {rec['all']:.3f} of the gold labels; ranked by the first "
        f"stage, R@30 {rec['30']:.3f}, R@50 {rec['50']:.3f}, R@100 {rec['100']:.3f}.",
        f"- Fusion fitted on {f.get('validation_docs', 0)} validation documents of TRAIN: {f.get('fusion')}; blend "
        f"fallback prior {f.get('prior_weight')}, lexical {f.get('lexical_weight')}, sparse {f.get('sparse_weight')}, "
        f"bi {f.get('bi_weight')}.",
        f"- HNSW vs exact top-30 agreement: {r['hnsw']['hnsw_agreement@30']:.4f}.",
    ]
    if r.get("rerank_rule"):
        rule = r["rerank_rule"]
        chosen = (f"its best validation gain {rule['rerank_gain']:+.4f} nDCG@10 is below the {MIN_RERANK_GAIN} it must "
                  "add" if rule["rerank_rule"] == "off" else f"validation gain {rule['rerank_gain']:+.4f} nDCG@10 "
                  f"re-ranking {rule['rerank_share']:.0%} of the documents")
        lines.append(f"- The re-ranking rule (fitted on the validation documents, out of fold): **{rule['rerank_rule']}** "
                     f"({chosen}; gain by share of the least sure documents re-ranked: {rule['rerank_gains']}). On TEST it "
                     f"re-ranked {r['rerank_share_test']:.0%} of the documents: second stage gain "
                     f"**{r['second_stage_gain_nDCG@10']:+.4f}** nDCG@10 over the same bundle's first stage (every "
                     f"document re-ranked: {r['second_stage_gain_every_doc_nDCG@10']:+.4f}); served p50 "
                     f"{r.get('served_latency_p50_s', r['latency_p50_s']):.3f} s.")
    for name, v in r.get("rerank_variants", {}).items():
        lines.append(f"  - re-ranker variant {name} (`bench.rerank_variants`, {v['examples']:,} pairs, "
                     f"{v['train_minutes']:.1f} min): validation gain {v['val_best_gain']:+.4f}, TEST gain re-ranking "
                     f"every document {v['test_gain_every_doc']:+.4f} nDCG@10, rule {v['rule']}.")
    if r.get("runtimes"):
        lines += ["", f"Cross-encoder runtimes on this CPU (the saved bundle; serving: `{r['serving_runtime']}`, chosen "
                  f"at training time on validation documents: int8 top-10 agreement "
                  f"{f.get('int8_top10_agreement', float('nan')):.3f}):", "",
                  "| runtime | TEST docs | P@1 | P@5 | R@10 | nDCG@10 | PyTorch on the same docs (P@1/P@5/R@10/nDCG@10) | "
                  "top-10 agreement | max logit diff | p50 s/doc | p95 s/doc | docs/s (batches of 32) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, m in r["runtimes"].items():
            t = m["torch_on_same_docs"]
            lines.append(f"| {name} | {m['quality_docs']} | " + " | ".join(_cell(m, k) for k in NAMES[:4])
                         + " | " + "/".join(_cell(t, k) for k in NAMES[:4])
                         + f" | {m['top10_agreement']:.3f} | {m['max_logit_diff']:.4f} | {m['latency_p50_s']:.3f} | "
                         f"{m['latency_p95_s']:.3f} | {m['throughput_docs_per_s']:.1f} |")
    else:
        lines.append(f"- Latency ({r['serving_runtime']}): BiCross p50 {r['latency_p50_s']:.3f} s, p95 {r['latency_p95_s']:.3f} s "
                     f"per document (one per call); {r['throughput_docs_per_s']:.1f} docs/s in batches of 32.")
    lines.append(f"\nBi-encoder stage alone (no cross-encoder): p50 {r['bi_latency_p50_s']:.3f} s, "
                 f"{r['bi_throughput_docs_per_s']:.1f} docs/s.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
