"""Pools from a corpus of millions: the Ray Data pipeline against the single-process builder on arXiv-cs.

On ``../shared/data/arxiv-cs/arxiv_80k.jsonl.gz`` (80,002 real abstracts), with the bundled pretrained encoder and
30 arXiv cs.* category names as the "new labels" whose pools are built:

1. On the first ``--subset`` documents: the single-process builder (read everything, ``encode``, ``scored_pools``)
   and the Ray pipeline (``embed_corpus`` with the ray engine in local mode, then ``shard_pools``) in one run:
   their docs/s ratio, and whether the top-100 pools are identical.
2. The whole corpus through the Ray pipeline while the memory of every process involved (this driver, Ray's
   daemons, the encoder actor) is sampled: the peak against the size of all the corpus's vectors, and against the
   same pipeline's peak on the first 1,000 documents (what a larger corpus adds).
3. The hours 14M documents would take: on this machine from the measured rate; per GPU where one is lent.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil

from bench.common import ROOT, command_line, machine, publish
from core.model.encoders import default_encoder_path, encode, load_bi_encoder
from core.newlabels.corpus_pools import CorpusSpec, ScaleConfig, corpus_blocks, embed_corpus, shard_pools, start_ray
from core.newlabels.pools import scored_pools

CORPUS = ROOT.parent / "shared" / "data" / "arxiv-cs" / "arxiv_80k.jsonl.gz"
POOL_SIZE = 100
TARGET_RATIO = 0.8
PAPER_CORPUS = 14_000_000
# arXiv's names of its computer-science categories (https://arxiv.org/category_taxonomy).
CS_CATEGORIES = {
    "cs.AI": "Artificial Intelligence", "cs.AR": "Hardware Architecture", "cs.CC": "Computational Complexity",
    "cs.CE": "Computational Engineering, Finance, and Science", "cs.CG": "Computational Geometry",
    "cs.CL": "Computation and Language", "cs.CR": "Cryptography and Security",
    "cs.CV": "Computer Vision and Pattern Recognition", "cs.CY": "Computers and Society", "cs.DB": "Databases",
    "cs.DC": "Distributed, Parallel, and Cluster Computing", "cs.DL": "Digital Libraries",
    "cs.DM": "Discrete Mathematics", "cs.DS": "Data Structures and Algorithms", "cs.ET": "Emerging Technologies",
    "cs.FL": "Formal Languages and Automata Theory", "cs.GR": "Graphics", "cs.GT": "Computer Science and Game Theory",
    "cs.HC": "Human-Computer Interaction", "cs.IR": "Information Retrieval", "cs.IT": "Information Theory",
    "cs.LG": "Machine Learning", "cs.LO": "Logic in Computer Science", "cs.MA": "Multiagent Systems",
    "cs.MM": "Multimedia", "cs.MS": "Mathematical Software", "cs.NA": "Numerical Analysis",
    "cs.NE": "Neural and Evolutionary Computing", "cs.NI": "Networking and Internet Architecture",
    "cs.OS": "Operating Systems", "cs.PF": "Performance", "cs.PL": "Programming Languages", "cs.RO": "Robotics",
    "cs.SC": "Symbolic Computation", "cs.SD": "Sound", "cs.SE": "Software Engineering",
    "cs.SI": "Social and Information Networks", "cs.SY": "Systems and Control",
}


class MemoryPeak:
    """Samples the proportional set size (shared pages split between their users) of this process and all its
    descendants (Ray's daemons and actors are children of the driver in local mode); keeps the peak."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s, self.peak, self._stop = every_s, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> int:
        me = psutil.Process()
        total = 0
        for p in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):  # a process that just ended
                total += p.memory_full_info().pss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            self._stop.wait(self.every_s)

    def __enter__(self) -> MemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def _head(corpus: Path, n: int, folder: Path) -> Path:
    out = folder / f"first-{n}.jsonl"
    with gzip.open(corpus, "rt", encoding="utf-8") as src, out.open("w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i == n:
                break
            dst.write(line)
    return out


def _categories(path: Path) -> dict[str, set[str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return {(o := json.loads(line))["id"]: set(o.get("categories") or []) for line in fh}


def _precision(pools: dict[int, list[tuple[str, float]]], codes: list[str], cats: dict[str, set[str]]) -> float:
    """Mean share of a pool's documents that carry the category the pool was built for."""
    return float(np.mean([np.mean([codes[lab] in cats.get(d, ()) for d, _ in pool]) for lab, pool in pools.items()]))


def run(corpus: Path, subset: int, small: int, work: Path) -> dict:
    encoder_path = default_encoder_path()
    head = _head(corpus, subset, work)
    counts = Counter(c for cats in _categories(head).values() for c in cats if c in CS_CATEGORIES)
    codes = [c for c, _ in counts.most_common(30)]
    encoder = load_bi_encoder(encoder_path)
    label_vectors = dict(enumerate(encode(encoder, [CS_CATEGORIES[c] for c in codes])))
    del encoder
    out: dict = {"corpus": corpus.name, "subset_docs": subset, "pool_size": POOL_SIZE, "labels": len(codes),
                 "encoder": Path(encoder_path).name}

    # 1. the single-process builder and the Ray pipeline on the same subset, one after the other
    start = time.perf_counter()
    block = next(corpus_blocks(CorpusSpec(str(head)), rows=subset + 1))
    ids, texts = block.column("id").to_pylist(), block.column("text").to_pylist()
    vectors = encode(load_bi_encoder(encoder_path), texts)
    single_s = time.perf_counter() - start
    single = scored_pools(list(range(len(ids))), vectors, label_vectors, POOL_SIZE)
    single = {lab: [(ids[i], s) for i, s in pool] for lab, pool in single.items()}
    del vectors, texts, block

    started = time.perf_counter()
    start_ray()
    out["ray_start_s"] = round(time.perf_counter() - started, 2)
    sub = embed_corpus(CorpusSpec(str(head)), encoder_path, "pretrained", work / "store", ScaleConfig(engine="ray"))
    ray_pools = shard_pools(sub, label_vectors, POOL_SIZE)
    out.update(single_docs_per_s=round(len(ids) / single_s, 2), ray_docs_per_s=round(sub.rows / sub.seconds, 2))
    out["ray_vs_single_ratio"] = round(out["ray_docs_per_s"] / out["single_docs_per_s"], 3)
    same_order = [[d for d, _ in ray_pools[lab]] == [d for d, _ in single[lab]] for lab in single]
    out["pools_identical"] = all(same_order)
    out["pools_identical_labels"] = int(sum(same_order))
    out["max_score_difference"] = float(max(abs(a[1] - b[1]) for lab in single
                                            for a, b in zip(ray_pools[lab], single[lab], strict=True)))

    # 2. memory: a small corpus, then the whole one, through the same pipeline
    small_head = _head(corpus, small, work)
    with MemoryPeak() as mem_small:
        embed_corpus(CorpusSpec(str(small_head)), encoder_path, "pretrained", work / "store", ScaleConfig(engine="ray"))
    with MemoryPeak() as mem_full:
        full = embed_corpus(CorpusSpec(str(corpus)), encoder_path, "pretrained", work / "store", ScaleConfig(engine="ray"))
    with MemoryPeak() as mem_search:
        search_start = time.perf_counter()
        full_pools = shard_pools(full, label_vectors, POOL_SIZE)
        search_s = time.perf_counter() - search_start
    mib = 1024 * 1024
    out.update(
        corpus_docs=full.rows, shards=len(full.shards), ray_docs_per_s_full=round(full.rows / full.seconds, 2),
        ray_minutes_full=round(full.seconds / 60, 2), search_s=round(search_s, 2),
        all_vectors_mb=round(full.rows * full.dim * 4 / mib, 1),
        all_texts_mb=round(sum(len(t) for b in corpus_blocks(CorpusSpec(str(corpus)), 5000)
                               for t in b.column("text").to_pylist()) / mib, 1),
        peak_memory_small_mb=round(mem_small.peak / mib, 1), peak_memory_mb=round(mem_full.peak / mib, 1),
        peak_memory_search_mb=round(mem_search.peak / mib, 1),
    )
    out["peak_memory_growth_mb"] = round(out["peak_memory_mb"] - out["peak_memory_small_mb"], 1)
    out["peak_below_all_vectors"] = out["peak_memory_growth_mb"] < out["all_vectors_mb"]
    cats = _categories(corpus)
    out["pool_precision_full"] = round(_precision(full_pools, codes, cats), 3)
    out["pool_precision_subset"] = round(_precision(single, codes, cats), 3)
    out["projected_hours_14m_this_machine"] = round(PAPER_CORPUS / out["ray_docs_per_s_full"] / 3600, 1)
    out["projected_hours_14m_per_gpu"] = None  # no GPU was lent to the session that ran this
    out["meets_target"] = (out["ray_vs_single_ratio"] >= TARGET_RATIO and out["pools_identical"]
                           and out["peak_below_all_vectors"])
    return out


def render(r: dict) -> str:
    gpu = (f"{r['projected_hours_14m_per_gpu']} h per GPU (divide by N GPUs)" if r["projected_hours_14m_per_gpu"]
           else "not measured (no GPU was lent to this run)")
    return f"""## Pools from a corpus of millions on Ray (`bench/pools_at_scale.py`)

Command: `{r['command']}` · machine: {r['machine']}

Corpus `{r['corpus']}` ({r['corpus_docs']:,} arXiv abstracts), encoder `{r['encoder']}`, {r['labels']} arXiv cs.* \
category names as new labels, top-{r['pool_size']} pools.

| measure | value |
|---|---|
| single-process builder, first {r['subset_docs']:,} docs | {r['single_docs_per_s']} docs/s |
| Ray Data pipeline (local mode), same docs | {r['ray_docs_per_s']} docs/s (Ray start-up {r['ray_start_s']} s, not counted) |
| **ray_vs_single_ratio** (target >= {TARGET_RATIO}) | **{r['ray_vs_single_ratio']}** |
| top-{r['pool_size']} pools identical to the single-process builder | {r['pools_identical_labels']} of {r['labels']} labels \
(max score difference {r['max_score_difference']:.1e}) |
| Ray pipeline, whole corpus | {r['ray_docs_per_s_full']} docs/s, {r['ray_minutes_full']} min, {r['shards']} shards |
| peak memory (all processes), whole corpus / first 1,000 docs | {r['peak_memory_mb']} / {r['peak_memory_small_mb']} MiB |
| what the whole corpus added to the peak / all its vectors / all its texts | {r['peak_memory_growth_mb']} / \
{r['all_vectors_mb']} / {r['all_texts_mb']} MiB |
| searching all shards for {r['labels']} pools | {r['search_s']} s (peak {r['peak_memory_search_mb']} MiB) |
| pool precision (share of a pool carrying its category), whole corpus / subset | {r['pool_precision_full']} / \
{r['pool_precision_subset']} |
| 14M documents (the paper's corpus) | {r['projected_hours_14m_this_machine']} h on this machine; {gpu} |

- Targets: ratio >= {TARGET_RATIO} {_met(r['ray_vs_single_ratio'] >= TARGET_RATIO)}; identical pools \
{_met(r['pools_identical'])}; what the whole corpus added to the peak below all its vectors \
{_met(r['peak_below_all_vectors'])}.
"""


def _met(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--subset", type=int, default=5000, help="documents for the ratio and the pool comparison")
    parser.add_argument("--small", type=int, default=1000, help="documents of the small run the peak is compared with")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        out = {**run(args.corpus, args.subset, args.small, Path(work)), "machine": machine(),
               "command": command_line("bench.pools_at_scale", argv)}
    publish("pools_at_scale", out, render, not args.no_write)


if __name__ == "__main__":
    main()
