"""Real scale: the TIBKAT library catalogue (41,333 English records, GND subjects), through the product, beside Annif.

What a user types (``xmtc import-taxonomy``, ``xmtc import-docs``, ``xmtc train --minutes 60``) builds and trains the
project in a data folder of its own; then every row is scored on ``dev_en`` with one metric code
(``core.model.metrics``: P@1, P@5, R@10, Annif's F1@5 and NDCG over 20 suggestions):

- ``zero_shot``: the pretrained bi-encoder's cosine to each subject's text;
- ``sparse``: the trained model's sparse backend alone (TF-IDF + Omikuji);
- ``neighbours``: the labels of the nearest training records alone;
- ``first_stage``: the learned fusion of every source (the served model without its re-ranker);
- ``bicross``: the served model (its re-ranker where the bundle has one).

R@10 is also split by the subjects' kind: with an English name, known only by a German one, never seen in training.
Serving is measured in a process of its own (peak memory, one-document p50, batched documents per second, bundle
size and load time). Peers: Annif 1.4.3 (``--peers``) in a virtual environment the bench creates, trained on the
same records, scored by the same metric code (see :mod:`bench.annif_peer`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, command_line, machine, publish

DATA = ROOT.parent / "shared" / "data" / "tibkat-gnd"
PROJECT = "tibkat"
METRICS = ("P@1", "P@5", "R@10", "F1@5", "NDCG")
ROWS = ("zero_shot", "sparse", "neighbours", "first_stage", "bicross")
ANNIF_PUBLISHED = {  # NatLibFi/Annif-LLMs4Subjects-GermEval2025 reports: all 19,949 dev records, 90k+ training records
    "Omikuji Bonsai": (0.340, 0.598), "MLLM": (0.230, 0.418), "XTransformer": (0.312, 0.552),
    "Bonsai+MLLM ensemble": (0.345, 0.610), "+XTransformer": (0.348, 0.616), "+LLM ensemble (best)": (0.355, 0.633)}
TARGETS = {"train_gib": 8.0, "serve_gib": 2.0, "p50_s": 0.2}


def xmtc(env: dict[str, str], *args: str) -> tuple[float, str]:
    """Run an ``xmtc`` command as a user would; returns its seconds and output."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "core.cli", "--quiet", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"xmtc {' '.join(args)} failed: {done.stderr[-2000:]}")
    return time.monotonic() - started, done.stdout.strip()


# What a user types (the README's worked example shows these very lines; $DATA is ../shared/data/tibkat-gnd).
STEPS = {
    "import_taxonomy": ("import-taxonomy", PROJECT, "$DATA/subjects.tsv.gz", "--create", "--label", "name_en,name_de"),
    "import_train": ("import-docs", PROJECT, "$DATA/train_en.jsonl.gz", "--as-split", "train"),
    "import_dev": ("import-docs", PROJECT, "$DATA/dev_en.jsonl.gz", "--as-split", "test"),
    "train": ("train", PROJECT, "--minutes", "60"),
}


def commands() -> list[str]:
    return [" ".join(["xmtc", *args]) for args in STEPS.values()]


def build(folder: Path, minutes: float, data: Path) -> str:
    """Import and train through the command line into ``folder`` (a data folder of its own); the training's output."""
    env = {**os.environ, "XMTC_DATA_DIR": str(folder), "XMTC_START_WORKER": "0"}
    env.pop("XMTC_DATABASE_URL", None)
    said = ""
    for name, args in STEPS.items():
        args = tuple(a.replace("$DATA", str(data)) for a in args)
        if name == "train":
            args = (*args[:-1], f"{minutes:g}")
        said = xmtc(env, *args)[1]
    return said


def served(folder: Path) -> tuple[Any, Any, list[Any], list[Any]]:
    """The project's database, its active version, its dev (test) and train documents."""
    os.environ.update({"XMTC_DATA_DIR": str(folder), "XMTC_START_WORKER": "0"})
    from core.config import Settings
    from core.data.catalog import documents
    from core.model.versions import active_version
    from storage.db import Database

    db = Database(Settings.from_env().db_url)
    pid = 1
    version = active_version(db, pid)
    docs = documents(db, pid)
    return db, version, [d for d in docs if d.split == "test"], [d for d in docs if d.split == "train"]


def subject_groups(db: Any, train: list[Any]) -> dict[str, set[int]]:
    """Label ids of subjects with an English name, known only by a German one, never seen in training."""
    from sqlalchemy import select

    from storage.models import Label

    with db.session() as s:
        rows = s.execute(select(Label.id, Label.alt_labels).where(Label.project_id == 1)).all()
    # Imported with --label name_en,name_de: a subject with both names keeps the German one as an alternative.
    english = {i for i, alts in rows if alts}
    seen = {lab for d in train for lab in d.gold}
    return {"english_name": english, "german_only": {i for i, _ in rows} - english,
            "unseen_in_training": {i for i, _ in rows} - seen}


def group_recall(rankings: list[list[int]], golds: list[set[int]], group: set[int], k: int = 10) -> tuple[float, int]:
    """R@k over each document's gold subjects of one group (documents without such a subject left out)."""
    scores = [len(set(r[:k]) & (g & group)) / len(g & group) for r, g in zip(rankings, golds, strict=True) if g & group]
    return (float(np.mean(scores)) if scores else 0.0), sum(len(g & group) for g in golds)


def scored(rankings: list[list[int]], golds: list[set[int]], groups: dict[str, set[int]],
           metrics: tuple[str, ...] = METRICS) -> dict[str, float]:
    """One row of the table: ``metrics``, then R@10 for each group of subjects."""
    from core.model.metrics import evaluate as score

    row = {k: round(v, 4) for k, v in score(rankings, golds, metrics).items()}
    row.update({f"R@10_{name}": round(group_recall(rankings, golds, group)[0], 4) for name, group in groups.items()})
    return row


def rankings_of(version: Any, texts: list[str], device: str = "cpu") -> dict[str, list[list[int]]]:
    """Every row's top-20 per text (the sources alone, the first stage, the served model, the zero-shot cosine)."""
    from core.model.encoders import default_encoder_path, load_bi_encoder
    from core.model.loading import load_ranker
    from core.model.ranker import BiCrossRanker

    ranker = load_ranker(Path(version.path), device)
    out: dict[str, list[list[int]]] = {r: [] for r in ROWS}
    batch = 64
    for start in range(0, len(texts), batch):
        part = texts[start:start + batch]
        vecs = ranker.embed_documents(part)
        first = [[p.label_id for p in r] for r in ranker.rank(part, k=20, rerank=False, doc_vectors=vecs)]
        out["first_stage"] += first
        out["bicross"] += [[p.label_id for p in r] for r in ranker.rank(part, k=20, doc_vectors=vecs)] \
            if ranker.cross is not None else first
        out["sparse"] += [list(s)[:20] for s in ranker.sparse.predict(part, 20)] if ranker.sparse else [[] for _ in part]
        out["neighbours"] += [list(s)[:20] for s in ranker.memory.scores(vecs, ranker.fusion.neighbours or 20)] \
            if ranker.memory else [[] for _ in part]
    zero = BiCrossRanker.build(load_bi_encoder(default_encoder_path(), device), make_label_table_from(ranker))
    for start in range(0, len(texts), batch):
        part = texts[start:start + batch]
        out["zero_shot"] += [[p.label_id for p in r] for r in zero.rank(part, k=20)]
    return out


LABEL_TEXTS = {  # what the encoders read for a subject: (alternative names, characteristic terms)
    "name": (0, 0), "name + German name": (1, 0), "name + 6 terms": (0, 6), "name + German name + 6 terms": (1, 6)}


def label_text_trial(folder: Path, docs: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Which subject text the pretrained bi-encoder reads best, on a seeded slice of ``train_en`` (never dev): the
    name (English, else German), with the German name as an alternative, with the characteristic terms of the
    subject's other training records (:func:`core.model.bicross.characteristic_terms`), both. Zero-shot R@10 over all
    subjects, and for those known only by a German name."""
    import random

    from core.data.catalog import servable_labels
    from core.model.bicross import characteristic_terms, make_label_table
    from core.model.encoders import default_encoder_path, load_bi_encoder
    from core.model.ranker import BiCrossRanker

    db, _, _, train = served(folder)
    groups = subject_groups(db, train)
    labels = servable_labels(db, 1)
    slice_ = set(random.Random(seed).sample(range(len(train)), docs))
    rest = [d for i, d in enumerate(train) if i not in slice_]
    probe = [d for i, d in enumerate(train) if i in slice_]
    golds = [set(d.gold) for d in probe]
    terms = characteristic_terms([d.text for d in rest], [set(d.gold) for d in rest], 6)
    encoder = load_bi_encoder(default_encoder_path(), "cpu")
    out: dict[str, Any] = {"docs": docs, "seed": seed}
    for name, (alts, n_terms) in LABEL_TEXTS.items():
        table = make_label_table(labels, [set(d.gold) for d in rest], alts, 0, terms if n_terms else None)
        ranker = BiCrossRanker.build(encoder, table)
        ranked = [[p.label_id for p in r] for s in range(0, len(probe), 64)
                  for r in ranker.rank([d.text for d in probe[s:s + 64]], k=20)]
        out[name] = scored(ranked, golds, {"german_only": groups["german_only"]}, ("P@1", "R@10", "NDCG"))
    db.dispose()
    return out


def make_label_table_from(ranker: Any) -> Any:
    """The served model's label table (the same texts), every label as one without training documents."""
    from core.model.labels import LabelTable

    t = ranker.table
    return LabelTable(t.ids.copy(), list(t.texts), list(t.external_ids), np.zeros(len(t.ids), dtype=np.float32))


def serve_probe(bundle: str, texts_file: str) -> None:
    """``--serve-probe``: in a process of its own, load the bundle, rank documents one at a time and in batches,
    and print the numbers as JSON (peak memory is this process's high-water mark)."""
    os.environ.setdefault("XMTC_DEVICE", "cpu")
    from core.model.loading import load_ranker

    texts = json.loads(Path(texts_file).read_text())
    started = time.monotonic()
    ranker = load_ranker(Path(bundle), "cpu")
    load_s = time.monotonic() - started
    ranker.rank(texts[:4], k=10)
    single = []
    for t in texts[:300]:
        t0 = time.perf_counter()
        ranker.rank([t], k=10)
        single.append(time.perf_counter() - t0)
    started = time.monotonic()
    batched = texts[300:1300]
    for s in range(0, len(batched), 64):
        ranker.rank(batched[s:s + 64], k=10)
    docs_per_s = len(batched) / (time.monotonic() - started)
    print(json.dumps({"load_seconds": round(load_s, 2), "latency_p50_s": round(float(np.median(single)), 4),
                      "latency_p95_s": round(float(np.percentile(single, 95)), 4), "docs_per_s": round(docs_per_s, 1),
                      "peak_rss_gib_serve": round(peak_gib(), 2)}))


def peak_gib() -> float:
    """This process's peak resident memory (``VmHWM``: ``ru_maxrss`` would count the parent's memory at the fork,
    as Linux keeps it across the exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1]) / 1024 ** 2
    return float("nan")


def serving(version: Any, texts: list[str], folder: Path) -> dict[str, Any]:
    probe = folder / "probe_texts.json"
    probe.write_text(json.dumps(texts[:1300]))
    done = subprocess.run([sys.executable, "-m", "bench.tibkat", "--serve-probe", version.path, str(probe)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "XMTC_DEVICE": "cpu"})
    if done.returncode != 0:
        raise SystemExit(f"the serving probe failed: {done.stderr[-2000:]}")
    size = sum(p.stat().st_size for p in Path(version.path).rglob("*") if p.is_file())
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "bundle_mib": round(size / 1024 ** 2, 1)}


def evaluate(folder: Path, dev_docs: int) -> dict[str, Any]:

    db, version, dev, train = served(folder)
    dev = dev[:dev_docs] if dev_docs else dev
    texts, golds = [d.text for d in dev], [set(d.gold) for d in dev]
    started = time.monotonic()
    ranked = rankings_of(version, texts)
    groups = subject_groups(db, train)
    systems = {row: scored(rankings, golds, groups) for row, rankings in ranked.items()}
    occurrences = {name: group_recall(ranked["bicross"], golds, g)[1] for name, g in groups.items()}
    cfg = version.config
    steps, planned = cfg.get("bi.steps", 0), cfg.get("bi.planned_steps", 0)
    out = {"systems": systems, "dev_docs": len(dev), "group_occurrences": occurrences,
           "served_version": version.name, "evaluation_minutes": round((time.monotonic() - started) / 60, 2),
           "epoch_fraction": round(steps / planned, 4) if planned else 0.0, "bi_steps": steps,
           "bi_planned_steps": planned, "bi_seconds_per_step": cfg.get("bi.seconds_per_step"),
           "part_minutes": {k: round(v / 60, 2) for k, v in
                            {"bi_encoder": cfg.get("bi.seconds"), "sparse": cfg.get("sparse_seconds"),
                             "neighbour_memory": cfg.get("memory_seconds"),
                             "first_stage_fusion": cfg.get("first_seconds"), "cross_encoder": cfg.get("cross.seconds"),
                             "second_stage_fusion": cfg.get("second_seconds"), "all_training": cfg.get("train_seconds"),
                             }.items() if v},
           "budget": {k.removeprefix("budget."): v for k, v in cfg.items() if k.startswith("budget.")},
           "cross_encoder": bool(cfg.get("cross.steps"))}
    out.update(serving(version, texts, folder))
    db.dispose()
    return out


def render(r: dict) -> str:
    names = {"zero_shot": "zero-shot (pretrained bi-encoder, the served subject text)", "sparse": "sparse backend alone",
             "neighbours": "nearest training records alone", "first_stage": "learned first stage",
             "bicross": f"**BiCross, the served model** ({r['served_version']})"}
    rows = [f"| {names[k]} | " + " | ".join(f"{r['systems'][k][m]:.3f}" for m in METRICS) + " | "
            + " / ".join(f"{r['systems'][k][f'R@10_{g}']:.3f}" for g in ("english_name", "german_only", "unseen_in_training"))
            + " |" for k in ROWS]
    for name, peer in r.get("peers", {}).items():
        label = {"annif_bonsai": "Omikuji Bonsai", "annif_mllm": "MLLM",
                 "annif_ensemble": f"Bonsai+MLLM ensemble ({peer.get('sources', 'tuned')})"}.get(name, name)
        rows.append(f"| Annif 1.4.3, same records: {label} | " + " | ".join(f"{peer[m]:.3f}" for m in METRICS) + " | "
                    + " / ".join(f"{peer.get(f'R@10_{g}', 0):.3f}" for g in ("english_name", "german_only", "unseen_in_training"))
                    + " |")
    published = "\n".join(f"| Annif, published: {n} | | | | {f1:.3f} | {nd:.3f} | |" for n, (f1, nd) in ANNIF_PUBLISHED.items())
    occ = r["group_occurrences"]
    trial = r.get("label_text")
    label_text = "" if not trial else (
        f"\nWhich subject text the encoders read (`--only label-text`): the pretrained bi-encoder zero-shot on "
        f"{trial['docs']:,} records of a seeded slice of `train_en` (never dev), the terms taken from the other "
        "training records:\n\n| subject text | P@1 | R@10 | NDCG | R@10 German-only subjects |\n|---|---|---|---|---|\n"
        + "\n".join(f"| {name} | {trial[name]['P@1']:.3f} | {trial[name]['R@10']:.3f} | {trial[name]['NDCG']:.3f} | "
                    f"{trial[name]['R@10_german_only']:.3f} |" for name in LABEL_TEXTS if name in trial) + "\n")
    parts = ", ".join(f"{ {'all_training': 'fitting in all'}.get(k, k.replace('_', ' '))} {v} min"
                      for k, v in r["part_minutes"].items())
    again_ = "".join(f" · `--only {p}`: `{r[f'command_{p}']}`" for p in ("serving", "label-text", "peers")
                     if f"command_{p}" in r)
    return f"""## Real scale: TIBKAT, 41,333 records and GND subjects (`bench/tibkat.py`)

Command: `{r['command']}`{again_} · machine: {r['machine']}

Through the product, in a data folder of its own: {'; '.join(f'`{c}`' for c in r['commands'])}. Scored on \
{r['dev_docs']:,} `dev_en` records by `core.model.metrics` (F1@5 and NDCG as `annif/eval.py` computes them, NDCG over \
20 suggestions). R@10 by subject kind: with an English name ({occ['english_name']:,} dev occurrences) / known only by \
a German name ({occ['german_only']:,}) / never seen in training ({occ['unseen_in_training']:,}).{peers_said(r)}

| system | P@1 | P@5 | R@10 | F1@5 | NDCG | R@10 English / German only / unseen |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}
{published}

- Import (the jobs' own time): taxonomy {r['import_taxonomy_minutes'] * 60:.0f} s, training records \
{r['import_train_minutes'] * 60:.0f} s, dev records {r['import_dev_minutes'] * 60:.0f} s. \
`xmtc train --minutes {r['train_budget_min']:g}`: {r['train_minutes']} min in all, the job's evaluation on the test \
split included ({parts}); the bi-encoder ran {r['bi_steps']:,} of {r['bi_planned_steps']:,} steps of an epoch \
(**{r['epoch_fraction']:.1%} of an epoch**, {r['bi_seconds_per_step']:.2f} s a step); cross-encoder: \
{'trained' if r['cross_encoder'] else 'not trained'}{''.join(f'; the plan said: "{n}"' for n in r.get('budget_notes', []))}.
- Peak memory: training **{r['peak_rss_gib_train']} GiB** (target {TARGETS['train_gib']:g}), serving \
**{r['peak_rss_gib_serve']} GiB** (target {TARGETS['serve_gib']:g}). Serving on this CPU: one document p50 \
**{r['latency_p50_s'] * 1000:.0f} ms** (p95 {r['latency_p95_s'] * 1000:.0f} ms; target {TARGETS['p50_s'] * 1000:.0f} ms), \
batches of 64: {r['docs_per_s']} documents/s; bundle {r['bundle_mib']} MiB, loaded in {r['load_seconds']} s.
{label_text}{rerank_said(r)}"""


def rerank_said(r: dict) -> str:
    if "second_stage_gain_nDCG@10" not in r:
        return ""
    line = (f"\n- Re-ranker (issue 26): the served model's second stage adds "
            f"{r['second_stage_gain_nDCG@10']:+.4f} NDCG over its own first stage on these records (re-ranked: "
            f"{r['rerank_share_dev']:.0%}; served p50 {r['served_latency_p50_s']:.3f} s).")
    for name, v in r.get("rerank_variants", {}).items():
        gain = v["test_gain_every_doc"]
        line += (f" Variant {name} ({v['examples']:,} pairs, {v['train_minutes']:.1f} min): validation "
                 f"{v['val_best_gain']:+.4f}, dev_en slice {gain:+.4f} nDCG@10 re-ranking every record, rule {v['rule']}.")
    return line


def peers_said(r: dict) -> str:
    e = r.get("peers", {}).get("annif_ensemble")
    if not e:
        return ""
    m = e["minutes"]
    return (f" Annif 1.4.3 (its own virtualenv) trained Bonsai and MLLM on {e['train_records']:,} of the `train_en` "
            f"records ({m['train_bonsai-en']} and {m['train_mllm-en']} min) and tuned the ensemble's weights with "
            f"`annif hyperopt` (100 trials, NDCG) on the other {e['tuning_records']:,} ({m['hyperopt']} min).")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--minutes", type=float, default=60.0, help="the training job's time budget")
    parser.add_argument("--folder", type=Path, default=ROOT / "var" / "bench-tibkat",
                        help="the data folder the project is built in (kept, so --evaluate-only can rescore it)")
    parser.add_argument("--evaluate-only", action="store_true", help="score the project already built in --folder")
    parser.add_argument("--dev-docs", type=int, default=0, help="dev records to score (0: all 9,672)")
    parser.add_argument("--peers", action="store_true", help="also train and score Annif (a separate virtualenv)")
    parser.add_argument("--only", choices=("label-text", "peers", "serving"),
                        help="measure one part again (the label-text trial on a train slice, the Annif peers, the "
                             "serving probe) on the project in --folder, keeping the rest of the results")
    parser.add_argument("--serve-probe", nargs=2, metavar=("BUNDLE", "TEXTS"), help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.serve_probe:
        serve_probe(*args.serve_probe)
        return
    results_file = ROOT / "bench" / "results" / "tibkat.json"
    previous = json.loads(results_file.read_text()) if results_file.is_file() else {}
    if args.only:  # one part measured again; the rest of the results kept
        if not previous:
            raise SystemExit(f"--only {args.only} updates bench/results/tibkat.json: run the whole bench first")
        previous.update(again(args.only, args.folder, args.data))
        previous[f"command_{args.only}"] = command_line("bench.tibkat", argv)
        previous.update(served_rerank(previous))
        publish("tibkat", previous, render, not args.no_write)
        return
    out: dict[str, Any] = {"commands": commands(), "train_budget_min": args.minutes}
    if not args.evaluate_only:
        if args.folder.exists():
            import shutil

            shutil.rmtree(args.folder)
        out["train_output"] = build(args.folder, args.minutes, args.data)
    out.update(recorded(args.folder))
    out.update(evaluate(args.folder, args.dev_docs))
    if args.peers:
        out.update(again("peers", args.folder, args.data))
    else:
        out.update({k: previous[k] for k in ("peers", "command_peers") if k in previous})
    out.update({k: previous[k] for k in ("label_text", "command_label-text") if k in previous})
    out.update(machine=machine(), command=command_line("bench.tibkat", argv), **served_rerank(out))
    publish("tibkat", out, render, not args.no_write)


def served_rerank(r: dict[str, Any]) -> dict[str, Any]:
    """The re-ranker's report keys (issue 26): what the served model's second stage adds over its own first stage on
    the same dev records (Annif's NDCG: the two rows are scored alike), and the served p50."""
    systems = r.get("systems", {})
    out: dict[str, Any] = {"served_latency_p50_s": r.get("latency_p50_s"),
                           "rerank_share_dev": r.get("rerank_share_dev") if r.get("cross_encoder") else 0.0}
    if "bicross" in systems and "first_stage" in systems:
        out["second_stage_gain_nDCG@10"] = round(systems["bicross"]["NDCG"] - systems["first_stage"]["NDCG"], 4)
    return out


def again(part: str, folder: Path, data: Path) -> dict[str, Any]:
    """``--only PART``: the keys one part of the bench measures."""
    if part == "label-text":
        return {"label_text": label_text_trial(folder)}
    if part == "peers":
        from bench.annif_peer import run_peers

        return {"peers": run_peers(folder / "annif", data)}
    db, version, dev, _ = served(folder)
    db.dispose()
    return serving(version, [d.text for d in dev], folder)


def recorded(folder: Path) -> dict[str, Any]:
    """What the project's jobs recorded: each import's and the training's minutes, the training's budget and peak memory."""
    from sqlalchemy import select

    from storage.db import Database
    from storage.models import Job

    db = Database(f"sqlite:///{folder / 'xmtc.db'}")
    with db.session() as s:
        jobs = s.scalars(select(Job).order_by(Job.id)).all()
        out: dict[str, Any] = {}
        imports = iter(("import_train_minutes", "import_dev_minutes"))
        for job in jobs:
            minutes = round((job.finished_at - job.started_at).total_seconds() / 60, 2)
            if job.kind == "import_taxonomy":
                out["import_taxonomy_minutes"] = minutes
            elif job.kind == "import_corpus":
                out[next(imports)] = minutes
            elif job.kind == "train_model" and job.status == "done":
                out.update(train_minutes=job.result["minutes"], peak_rss_gib_train=job.result["peak_rss_gib"],
                           train_budget_min=job.params["config"]["time_budget_min"],
                           budget_notes=job.result.get("budget_notes", []))
    db.dispose()
    return out


if __name__ == "__main__":
    main()
