"""Benchmark of the Annotate page on the demo project: answer latency at the server, and 8 SMEs at once.

Usage:
    python -m bench.annotate [--answers 100] [--smes 8] [--minutes 5] [--train-after N] [--no-write]

Setup (real, in a temporary data folder): the demo project (PubMed/MeSH), the zero-shot label index,
pools for the 30 labels of new_labels.txt, a campaign and its first AL iteration (real jobs).
1. Load: ``--smes`` processes answer concurrently for ``--minutes`` against the same SQLite file
   (claim, think 0.2-2 s, answer; 5% walk away so their lease expires); then the counts are checked. With
   ``--train-after N`` a worker process runs the AL iterations that every N new yes answers queue, meanwhile.
2. Latency, on the database the load left (thousands of answers): one SME answers through the real page
   (Streamlit's AppTest runs ``pages/1_Annotate.py`` exactly as the server does); the time from the click
   to the next question rendered is measured.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, command_line, machine, signed_in_page, update_benchmarks
from bench.ranking import log


def setup(data_dir: Path, smes: int = 8, train_after: int = 10**6, database_url: str = "") -> dict:
    os.environ.update({"XMTC_DATA_DIR": str(data_dir), "XMTC_START_WORKER": "0"})
    os.environ.pop("XMTC_DATABASE_URL", None)
    if database_url:  # e.g. PostgreSQL: the SMEs' processes and the worker read it from the environment
        os.environ["XMTC_DATABASE_URL"] = database_url
    from sqlalchemy import select

    from core.accounts.auth import create_user
    from core.accounts.projects import add_member
    from core.config import Settings
    from core.data.demo import NEW_LABELS, build_demo
    from core.jobs import enqueue
    from core.newlabels.campaigns import CampaignConfig, create_campaign
    from core.worker import WorkerProcess
    from storage.db import Database
    from storage.models import Label

    settings = Settings.from_env()
    db = Database(settings.db_url)
    db.create_all()
    admin = create_user(db, "lead", "long enough", "admin").id
    demo = build_demo(db, settings.demo_data_dir, user_id=admin)
    worker = WorkerProcess(db, settings)
    worker.register()
    worker.run_one()  # the label index (zero-shot): the active model
    names = [n.strip() for n in (settings.demo_data_dir / NEW_LABELS).read_text().splitlines() if n.strip()]
    with db.session() as s:
        ids = list(s.scalars(select(Label.id).where(Label.project_id == demo.project_id, Label.pref_label.in_(names))))
    enqueue(db, "build_pools", demo.project_id, {"label_ids": ids})
    worker.run_one()
    cid = create_campaign(db, demo.project_id, "bench", ids, admin,
                          CampaignConfig(questions_per_fill=5000, train_after_positives=train_after, lease_s=30))
    worker.run_one()  # iteration 0: serve the labels, rank the pools, fill the queue
    users = [create_user(db, f"sme{i}", "long enough", "annotator").id for i in range(smes)]
    for i in range(smes):
        add_member(db, demo.project_id, f"sme{i}")
    db.dispose()
    return {"project": demo.project_id, "campaign": cid, "smes": users, "admin": admin}


def latency(world: dict, answers: int) -> list[float]:
    at = signed_in_page("pages/1_Annotate.py", world["smes"][0], world["project"])
    at.run()
    values = ["Yes", "No", "Unsure", "No"]
    out = []
    for i in range(answers + 3):
        button = next(b for b in at.button if b.label.startswith(values[i % 4]))
        started = time.perf_counter()
        button.click().run()
        elapsed = time.perf_counter() - started
        if at.exception or "Label:" not in "".join(str(t.value) for t in at.text):
            raise RuntimeError(f"the page did not show the next question: {at.exception}")
        if i >= 3:  # the first runs warm caches up
            out.append(elapsed * 1000)
    return out


def sme_process(url: str, campaign: int, user: int, seconds: float, seed: int, queue: mp.Queue) -> None:
    from core.newlabels.campaigns import AnswerConflict, answer, claim_next
    from storage.db import Database

    db = Database(url)
    rng = random.Random(seed)
    stored, conflicts, walked, lost, server_ms = [], 0, 0, 0, []
    deadline = time.monotonic() + seconds
    q = None
    while time.monotonic() < deadline:
        q = q or claim_next(db, campaign, user)
        if q is None:
            time.sleep(0.5)
            continue
        away = rng.random() < 0.05
        if away:
            walked += 1
            time.sleep(31)  # walks away: the 30 s lease runs out
        else:
            time.sleep(rng.uniform(0.2, 2.0))
        value = rng.choice(["yes", "no", "no", "unsure", "skip"])
        started = time.perf_counter()  # the server's share of "key press -> next question": store, then claim
        try:
            answer(db, q.item_id, user, value)
            stored.append((q.item_id, user, value))
        except AnswerConflict:
            conflicts += 1
            lost += not away  # refused although the SME answered within the lease: a lease lost
        q = claim_next(db, campaign, user)
        server_ms.append((time.perf_counter() - started) * 1000)
    queue.put({"stored": stored, "conflicts": conflicts, "walked": walked, "lost": lost, "server_ms": server_ms})


def load(world: dict, url: str, smes: int, minutes: float, train: bool = False) -> dict:
    from sqlalchemy import func, select

    from storage.db import Database
    from storage.models import Annotation, Job, QueueItem

    queue: mp.Queue = mp.get_context("spawn").Queue()
    ctx = mp.get_context("spawn")
    # Spawned children import the worker function by its module name (not __main__ under ``python -m``).
    target = importlib.import_module("bench.annotate").sme_process
    procs = [ctx.Process(target=target, args=(url, world["campaign"], world["smes"][i], minutes * 60, i, queue))
             for i in range(smes)]
    # With ``train``, a worker process runs the AL iterations the answers trigger, while the SMEs go on answering.
    worker = subprocess.Popen([sys.executable, "-m", "core.worker"], cwd=ROOT) if train else None
    for p in procs:
        p.start()
    reports = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    if worker is not None:
        worker.terminate()
        worker.wait(60)
    acknowledged = sorted(x for r in reports for x in r["stored"])
    db = Database(url)
    with db.session() as s:
        rows = sorted(tuple(r) for r in s.execute(select(Annotation.queue_item_id, Annotation.user_id, Annotation.answer)))
        statuses = [i.status for i in s.scalars(select(QueueItem).where(QueueItem.campaign_id == world["campaign"]))]
        iterations = s.execute(select(Job.status, func.count()).where(Job.kind == "al_iteration")
                               .group_by(Job.status)).all()
    real = [i for i, _, v in rows if v != "skip"]
    server_ms = [x for r in reports for x in r["server_ms"]]
    return {"al_iterations": dict(iterations), "answer_server_p50_ms": float(np.percentile(server_ms, 50)),
            "answer_server_p95_ms": float(np.percentile(server_ms, 95)), "smes": smes, "minutes": minutes,
            "answers_stored": len(rows), "answers_acknowledged": len(acknowledged),
            "stored_exactly_once": rows == acknowledged, "questions_answered_twice": len(real) - len(set(real)),
            "refused_late_answers": sum(r["conflicts"] for r in reports), "walked_away": sum(r["walked"] for r in reports),
            "leases_lost": sum(r["lost"] for r in reports),
            "queue_states": {s: statuses.count(s) for s in sorted(set(statuses))}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--smes", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--train-after", type=int, default=0,
                        help="queue an AL iteration after this many new yes answers and run it in a worker process "
                             "during the load (0: no training); results go to bench/results/load.json")
    parser.add_argument("--database-url", default="",
                        help="an empty database to run on (e.g. postgresql+psycopg://user@host/db); default: SQLite in a "
                             "temporary folder. Results of a PostgreSQL run go to bench/results/annotate_postgres.json")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    command = command_line("bench.annotate", argv)
    train = args.train_after > 0
    postgres = args.database_url.startswith("postgresql")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "var"
        started = time.monotonic()
        world = setup(data_dir, args.smes, args.train_after if train else 10**6, args.database_url)
        log(f"setup (demo, index, pools, campaign, first iteration) {time.monotonic() - started:.0f} s")
        # Load first: AppTest makes the page script ``__main__``, which spawned processes would re-run.
        result = load(world, args.database_url or f"sqlite:///{data_dir / 'xmtc.db'}", args.smes, args.minutes, train)
        if postgres:
            result["database"] = "one PostgreSQL database"
        log(f"load: {result}")
        ms = latency(world, args.answers)
        log(f"answer latency p50 {np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms")
    out = {"answer_latency_p50_ms": float(np.percentile(ms, 50)), "answer_latency_p95_ms": float(np.percentile(ms, 95)),
           "answers_timed": len(ms), "load": result, "train_after": args.train_after, "machine": machine(),
           "command": command}
    if args.no_write:
        print(json.dumps(out, indent=2))
        return
    name = "annotate_postgres" if postgres else "load" if train else "annotate"
    (ROOT / "bench" / "results" / f"{name}.json").write_text(json.dumps(out, indent=2))
    update_benchmarks(name, render(out))
    log(f"wrote bench/results/{name}.json and BENCHMARKS.md")


def render(r: dict) -> str:
    load_ = r["load"]
    title = ("## Load on PostgreSQL: SMEs answering while the model retrains (`bench/annotate.py --database-url`)"
             if r["load"].get("database", "").endswith("PostgreSQL database") else
             "## Load: SMEs answering while the model retrains (`bench/annotate.py --train-after`)" if r.get("train_after")
             else "## Annotate: answer latency and concurrent SMEs (`bench/annotate.py`)")
    training = (f"- Training behind them: an AL iteration was queued after every {r['train_after']} new yes answers and "
                f"run by a worker process during the load (real training, pool re-ranking and queue refills): "
                f"{load_['al_iterations']}." if r.get("train_after") else "")
    return "\n".join(line for line in [
        title, "",
        f"Command: `{r['command']}` · machine: {r['machine']}.", "",
        f"- Answer latency at the server (click -> next question rendered, the real page run by Streamlit's "
        f"AppTest on the demo database the load phase left, {r['answers_timed']} answers): p50 {r['answer_latency_p50_ms']:.0f} ms, "
        f"p95 {r['answer_latency_p95_ms']:.0f} ms (target < 300 ms).",
        f"- {load_['smes']} SME processes for {load_['minutes']:g} minutes on {load_.get('database', 'one SQLite file')}: "
        f"{load_['answers_stored']} answers stored, {load_['answers_acknowledged']} acknowledged "
        f"(exactly once: {load_['stored_exactly_once']}), questions answered twice: "
        f"{load_['questions_answered_twice']}, {load_['walked_away']} walk-aways whose lease expired, "
        f"{load_['refused_late_answers']} late answers refused with a message (the question had gone to another SME), "
        f"leases lost (an answer within its lease refused): {load_['leases_lost']}; queue afterwards: {load_['queue_states']}.",
        (f"- Each answer at the server during the load (store it, claim the next question, in the SME's process): "
         f"p50 {load_['answer_server_p50_ms']:.0f} ms, p95 {load_['answer_server_p95_ms']:.0f} ms."
         if "answer_server_p50_ms" in load_ else None),  # a run from before this was measured
        training,
    ] if line is not None)


if __name__ == "__main__":
    main()
