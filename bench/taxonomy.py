"""Benchmark of the Taxonomy page's work: search on the full MeSH tree, and a real PhySH 2.6 -> 2.7 update.

Usage:
    python -m bench.taxonomy [--no-write]

1. Search: the whole MeSH 2015 tree (27,455 descriptors, 56k tree numbers) in a project; 40 queries (whole names,
   prefixes, inner words, ids, no hit) through ``core.data.catalog.search_labels``, 5 times each; and the Taxonomy page
   itself (Streamlit's AppTest) answering a search.
2. Update: PhySH 2.6 imported with a zero-shot label index (the pretrained bi-encoder); PhySH 2.7 compared (the
   preview job) and applied (the apply job embeds the added and renamed labels into a new active version, no
   retraining). Then each of the 40 added concepts is searched for by ranking its own name as a document with the
   served version: is it in the top 10?
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from bench.common import ROOT, command_line, machine, signed_in_page, temp_data_dir, update_benchmarks
from bench.ranking import log

QUERIES = ["Myocardial Infarction", "myocard", "infarction", "Neoplasms", "breast", "carcinoma", "Humans", "mice",
           "heart", "Diabetes Mellitus, Type 2", "diab", "insulin", "kinase", "protein", "receptor", "D009203", "D006801",
           "virus", "hepatitis", "lung", "asthma", "child", "pregnancy", "brain", "neuron", "Alzheimer", "depress",
           "hypertension", "stroke", "anti-bacterial", "RNA", "DNA", "cell line", "zebrafish", "tuberculosis", "HIV",
           "obesity", "quantum gravity", "xyzzy", "%"]


def search_latency(db, settings) -> dict:
    from core.accounts.projects import create_project
    from core.data.catalog import search_labels
    from core.data.concepts import read_mesh_tree
    from core.data.imports import import_taxonomy

    started = time.monotonic()
    pid = create_project(db, "MeSH 2015 full tree")
    taxonomy = read_mesh_tree(settings.demo_data_dir / "mesh-2015" / "tree-numbers.tsv.gz")
    import_taxonomy(db, pid, taxonomy, "MeSH 2015")
    log(f"imported {len(taxonomy):,} MeSH descriptors in {time.monotonic() - started:.0f} s")
    search_labels(db, pid, "warm up")
    times, hits = [], {}
    for _ in range(5):
        for q in QUERIES:
            t0 = time.perf_counter()
            found = search_labels(db, pid, q)
            times.append((time.perf_counter() - t0) * 1000)
            hits[q] = found[0][2] if found else None
    page = page_search(pid, "myocard")
    return {"descriptors": len(taxonomy), "queries": len(QUERIES), "search_p50_ms": statistics.median(times),
            "search_p95_ms": sorted(times)[int(0.95 * len(times)) - 1], "search_max_ms": max(times),
            "page_with_search_median_s": page, "top_hits": {q: hits[q] for q in QUERIES[:6]}}


def page_search(project_id: int, query: str, runs: int = 5) -> float:

    from core.accounts.auth import create_user
    from core.config import Settings
    from storage.db import Database

    db = Database(Settings.from_env().db_url)
    admin = create_user(db, "lead", "long enough", "admin").id
    out = []
    for i in range(runs + 1):
        at = signed_in_page("pages/4_Taxonomy.py", admin, project_id)
        at.run()
        at.text_input(key="taxonomy_search").set_value(query)
        t0 = time.perf_counter()
        at.run()
        if at.exception:
            raise RuntimeError(f"the page failed: {at.exception}")
        if i:
            out.append(time.perf_counter() - t0)
    return round(statistics.median(out), 3)


def physh_update(db, settings) -> dict:
    from core.accounts.projects import create_project
    from core.data.catalog import servable_labels
    from core.data.concepts import read_taxonomy
    from core.data.imports import import_taxonomy
    from core.jobs import enqueue, get_job
    from core.model.loading import load_ranker
    from core.model.versions import active_version
    from core.taxonomy.update import APPLY_UPDATE, PREVIEW_UPDATE
    from core.worker import WorkerProcess
    from storage.models import Label

    physh = settings.demo_data_dir / "physh"
    pid = create_project(db, "PhySH")
    import_taxonomy(db, pid, read_taxonomy(physh / "physh-2.6.json.gz"), "PhySH 2.6")
    worker = WorkerProcess(db, settings)
    worker.register()
    t0 = time.monotonic()
    enqueue(db, "build_label_index", pid)
    worker.run_one()
    index_s = time.monotonic() - t0
    before = active_version(db, pid)

    def run(kind: str, params: dict) -> tuple[dict, float]:
        t = time.monotonic()
        job = enqueue(db, kind, pid, params)
        worker.run_one()
        view = get_job(db, job)
        if view.status != "done":
            raise RuntimeError(f"{kind} failed: {view.error}")
        return view.result, time.monotonic() - t

    path = str(physh / "physh-2.7.json.gz")
    preview, preview_s = run(PREVIEW_UPDATE, {"path": path, "version_name": "PhySH 2.7"})
    applied, apply_s = run(APPLY_UPDATE, {"path": path, "version_name": "PhySH 2.7", "digest": preview["digest"]})
    after = active_version(db, pid)
    ranker = load_ranker(after.path, settings.device)
    added = applied["added_label_ids"]
    with db.session() as s:
        names = {i: s.get(Label, i).pref_label for i in added}
    ranked = ranker.rank([names[i] for i in added], k=10)
    found = sum(1 for i, preds in zip(added, ranked, strict=True) if i in {p.label_id for p in preds})
    first = sum(1 for i, preds in zip(added, ranked, strict=True) if preds and preds[0].label_id == i)
    return {"counts": preview["counts"], "blockers": preview["blockers"], "index_s": round(index_s, 1),
            "servable_labels": len(servable_labels(db, pid)),
            "preview_s": round(preview_s, 1), "apply_and_serve_s": round(apply_s, 1), "added": len(added),
            "added_in_top10_of_own_name": found, "added_ranked_first": first, "version_before": before.name,
            "version_after": after.name, "examples": [names[i] for i in added[:5]]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    command = command_line("bench.taxonomy", argv)
    with temp_data_dir():
        from core.config import Settings
        from storage.db import Database

        settings = Settings.from_env()
        db = Database(settings.db_url)
        db.create_all()
        search = search_latency(db, settings)
        log(f"search: {search}")
        update = physh_update(db, settings)
        log(f"update: {update}")
    out = {"search": search, "physh_update": update, "machine": machine(), "command": command}
    if args.no_write:
        print(json.dumps(out, indent=2))
        return
    (ROOT / "bench" / "results" / "taxonomy.json").write_text(json.dumps(out, indent=2))
    update_benchmarks("taxonomy", render(out))
    log("wrote bench/results/taxonomy.json and BENCHMARKS.md")


def render(out: dict) -> str:
    u, s = out["physh_update"], out["search"]
    return "\n".join([
        "## Taxonomy: search on MeSH, and the PhySH 2.6 -> 2.7 update (`bench/taxonomy.py`)", "",
        f"Command: `{out['command']}` · machine: {out['machine']}.", "",
        f"- Search over the full MeSH 2015 tree ({s['descriptors']:,} descriptors; preferred names, alternative names "
        f"and ids), {s['queries']} queries x 5: **p50 {s['search_p50_ms']:.1f} ms, p95 {s['search_p95_ms']:.1f} ms, "
        f"max {s['search_max_ms']:.1f} ms** at the server (target < 200 ms); the whole Taxonomy page answering a search: "
        f"median {s['page_with_search_median_s'] * 1000:.0f} ms.",
        f"- PhySH 2.6 -> 2.7 (real releases): diff {u['counts']}; blockers: {u['blockers'] or 'none'}. Preview job "
        f"{u['preview_s']:.0f} s; apply + serve job {u['apply_and_serve_s']:.0f} s ({u['version_before']} -> "
        f"{u['version_after']}, no retraining; the zero-shot index of 2.6 took {u['index_s']:.0f} s).",
        f"- The {u['added']} added concepts are servable at once: ranking each one's own name as a document, "
        f"{u['added_in_top10_of_own_name']} of {u['added']} are in the top 10 ({u['added_ranked_first']} first) "
        f"among all {u['servable_labels']:,} servable PhySH 2.7 labels. E.g. {', '.join(u['examples'])}.",
    ])


if __name__ == "__main__":
    main()
