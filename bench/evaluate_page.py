"""Benchmark of the Evaluate page: server render time for a project with 1,000 rated test documents.

Usage:
    python -m bench.evaluate_page [--documents 1000] [--runs 7] [--no-write]

Setup (in a temporary data folder): the demo project (PubMed/MeSH, 1,000 test documents, the MeSH tree), two
model versions (BiCross-like and baseline-like) with top-10 predictions per test document (gold labels mixed
with random ones), LLM ratings of every predicted label and SME ratings of every document (blind or with the
LLM shown, with times), and a campaign with 10 iterations of Recall@10. Then the real page script
(``pages/3_Evaluate.py``, run by Streamlit's AppTest as the server runs it) is timed over ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from bench.common import ROOT, command_line, machine, signed_in_page, temp_data_dir, update_benchmarks
from bench.ranking import log


def seed(n_docs: int, seed_: int = 0) -> dict:
    from sqlalchemy import insert, select

    from core.accounts.auth import create_user
    from core.config import Settings
    from core.data.demo import build_demo
    from core.model.labels import Prediction
    from core.model.predictions import store_predictions
    from core.model.versions import register_version, write_bundle
    from storage.db import Database
    from storage.models import Campaign, Document, DocumentLabel, Rating

    rng = random.Random(seed_)
    settings = Settings.from_env()
    db = Database(settings.db_url)
    db.create_all()
    admin = create_user(db, "lead", "long enough", "admin").id
    smes = [create_user(db, f"sme{i}", "long enough", "annotator").id for i in range(3)]
    pid = build_demo(db, settings.demo_data_dir, user_id=admin, index_job=False).project_id
    with db.session() as s:
        docs = list(s.scalars(select(Document.id).where(Document.project_id == pid, Document.split == "test")
                              .order_by(Document.id).limit(n_docs)))
        gold: dict[int, list[int]] = {}
        for d, lab in s.execute(select(DocumentLabel.document_id, DocumentLabel.label_id)
                                .where(DocumentLabel.document_id.in_(docs))):
            gold.setdefault(d, []).append(lab)
        every = sorted({lab for labs in gold.values() for lab in labs})
    versions = [register_version(db, pid, kind, write_bundle(settings.models_dir, pid, kind, lambda f: {}), {}, {}, None,
                                 activate=kind == "bicross") for kind in ("bicross", "baseline")]
    rows = []
    for v, share in zip(versions, (0.6, 0.4), strict=True):
        rankings = []
        for d in docs:
            picks = rng.sample(gold[d], min(len(gold[d]), round(10 * share)))
            picks += [lab for lab in rng.sample(every, 20) if lab not in picks][: 10 - len(picks)]
            rankings.append([Prediction(lab, 1 - i / 10, 1 - i / 10) for i, lab in enumerate(picks)])
        store_predictions(db, v, docs, rankings)
        for d, ranking in zip(docs, rankings, strict=True):
            sme, shown = smes[d % 3], rng.random() < 0.5
            seconds = rng.uniform(60, 400) if not shown else rng.uniform(30, 200)
            for p in ranking:
                relevant = p.label_id in gold[d]
                llm = rng.choice([1, 2]) if relevant else rng.choice([0, 0, 0, 1])
                human = llm if rng.random() < 0.7 else rng.choice([0, 1, 2])
                rows.append({"project_id": pid, "document_id": d, "label_id": p.label_id, "model_version_id": v,
                             "kind": "llm", "rater": "llm:judge", "rating": llm, "explanation": "Seeded explanation."})
                rows.append({"project_id": pid, "document_id": d, "label_id": p.label_id, "model_version_id": v,
                             "kind": "sme", "rater": f"user:{sme}", "user_id": sme, "rating": human,
                             "seconds": seconds, "llm_shown": shown, "explanation": ""})
    with db.session() as s:
        s.execute(insert(Rating), rows)
        campaign = Campaign(project_id=pid, name="new labels")
        s.add(campaign)
        s.flush()
        cid = campaign.id
    for it in range(1, 11):
        register_version(db, pid, "bicross", write_bundle(settings.models_dir, pid, "bicross", lambda f: {}),
                         {"campaign_id": cid, "iteration": it},
                         {"answered_R@10": 0.1 + it / 30, "heldout_R@10": 0.1 + it / 40, "old_R@10": 0.37 + it / 1000}, None)
    db.dispose()
    return {"project": pid, "admin": admin, "documents": len(docs), "ratings": len(rows)}


def time_page(world: dict, runs: int) -> list[float]:

    out = []
    for i in range(runs + 1):
        at = signed_in_page("pages/3_Evaluate.py", world["admin"], world["project"], timeout_s=120)
        started = time.perf_counter()
        at.run()
        elapsed = time.perf_counter() - started
        if at.exception:
            raise RuntimeError(f"the page failed: {at.exception}")
        if i:  # the first run imports plotly, pandas and the page's modules
            out.append(elapsed)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    command = command_line("bench.evaluate_page", argv)
    with temp_data_dir():
        started = time.monotonic()
        world = seed(args.documents)
        log(f"seeded {world['documents']} rated documents, {world['ratings']:,} ratings in {time.monotonic() - started:.0f} s")
        seconds = time_page(world, args.runs)
    out = {"rated_documents": world["documents"], "ratings": world["ratings"], "runs": len(seconds),
           "render_median_s": round(statistics.median(seconds), 3), "render_max_s": round(max(seconds), 3),
           "machine": machine(), "command": command}
    log(json.dumps(out))
    if args.no_write:
        return
    (ROOT / "bench" / "results" / "evaluate_page.json").write_text(json.dumps(out, indent=2))
    update_benchmarks("evaluate_page", render(out))
    log("wrote bench/results/evaluate_page.json and BENCHMARKS.md")


def render(out: dict) -> str:
    return "\n".join([
        "## Evaluate page render time (`bench/evaluate_page.py`)", "",
        f"Command: `{out['command']}` · machine: {out['machine']}.", "",
        f"- A project with {out['rated_documents']:,} rated test documents ({out['ratings']:,} LLM and SME ratings of "
        f"two versions' top-10, 10 AL iterations): the whole page script at the server (Streamlit's AppTest) "
        f"takes **median {out['render_median_s']:.2f} s, max {out['render_max_s']:.2f} s** over {out['runs']} runs "
        "(target < 2 s)."])


if __name__ == "__main__":
    main()
