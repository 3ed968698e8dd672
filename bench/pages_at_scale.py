"""The pages at a library's size: the TIBKAT project that ``bench/tibkat.py`` built (41,218 subjects, 51,005
records, a trained model), each page run as a signed-in user through Streamlit's AppTest, timed per script run.

- Overview: the project's numbers and versions (admin);
- Taxonomy: the top level (browse), a search (which opens its best match: the subject's view);
- Model: "try" the active model on a dev record (the model loaded once, as the page caches it);
- Annotate: a campaign over 5 new subjects with pools of 1,000 records each, the queue's next question shown and
  answered by an SME.

Each interaction runs ``--runs`` times after one warm-up run; p50 and p95 of the script's run time are reported
against the 2 s target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, command_line, machine, publish, signed_in_page

TARGET_S = 2.0


def _timed(make: Any, act: Any, runs: int) -> list[float]:
    """Seconds of the script run ``act`` triggers, ``runs`` times after a warm-up (a fresh page each time)."""
    out = []
    for i in range(runs + 1):
        at = make()
        at.run()
        t0 = time.perf_counter()
        act(at)
        seconds = time.perf_counter() - t0
        if at.exception:
            raise SystemExit(f"the page failed: {at.exception}")
        if i:
            out.append(seconds)
    return out


def _stats(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {"p50_s": round(statistics.median(ordered), 3), "p95_s": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 3),
            "runs": len(ordered)}


def campaign(db: Any, pid: int, admin: int, smes: list[int], labels: int = 5, pool: int = 1000) -> int:
    """A campaign over ``labels`` subjects with pools of ``pool`` training records (stand-ins for a pool build)."""
    import random

    from sqlalchemy import select

    from core.data.catalog import servable_labels
    from core.model.versions import active_version
    from core.newlabels.campaigns import CampaignConfig, add_questions, create_campaign
    from core.newlabels.jobs import store_pools
    from storage.models import Document

    rng = random.Random(0)
    with db.session() as s:
        docs = list(s.scalars(select(Document.id).where(Document.project_id == pid, Document.split == "train")))
    chosen = rng.sample([lab.id for lab in servable_labels(db, pid)], labels)
    store_pools(db, pid, {lab: [(d, 0.5) for d in rng.sample(docs, pool)] for lab in chosen}, None)
    cid = create_campaign(db, pid, "pages at scale", chosen, admin, CampaignConfig(train_after_positives=10**6))
    add_questions(db, cid, [(d, lab) for lab in chosen for d in rng.sample(docs, 150)], active_version(db, pid).id, 1)
    return cid


def run(folder: Path, runs: int) -> dict[str, Any]:
    os.environ.update({"XMTC_DATA_DIR": str(folder), "XMTC_START_WORKER": "0"})
    from sqlalchemy import func, select

    from core.accounts.auth import create_user
    from core.accounts.projects import add_member
    from core.config import Settings
    from core.data.catalog import documents
    from storage.db import Database
    from storage.models import Document, Label

    db = Database(Settings.from_env().db_url)
    pid = 1
    with db.session() as s:
        labels = s.scalar(select(func.count()).select_from(Label).where(Label.project_id == pid))
        docs = s.scalar(select(func.count()).select_from(Document).where(Document.project_id == pid))
    stamp = str(int(time.time()))
    admin = create_user(db, f"lead{stamp}", "long enough", "admin").id
    sme = create_user(db, f"sme{stamp}", "long enough", "annotator").id
    add_member(db, pid, f"sme{stamp}")
    cid = campaign(db, pid, admin, [sme])
    probe = documents(db, pid, split="test", with_gold=False)[0].text
    out: dict[str, Any] = {"labels": labels, "documents": docs, "campaign_id": cid}

    def page(path: str, user: int):
        return lambda: signed_in_page(path, user, pid, timeout_s=300)

    def search(at):
        at.text_input(key="taxonomy_search").set_value("engine").run()

    def try_model(at):
        at.text_area(key="try_text").set_value(probe)
        at.button(key="try_rank").click().run()

    def answer(at):
        at.button(key="ans_no").click().run()

    interactions = {
        "overview": (page("overview.py", admin), lambda at: at.run()),
        "taxonomy_browse": (page("pages/4_Taxonomy.py", admin), lambda at: at.run()),
        "taxonomy_search": (page("pages/4_Taxonomy.py", admin), search),
        "model_try": (page("pages/2_Model.py", admin), try_model),
        "annotate_queue": (page("pages/1_Annotate.py", sme), lambda at: at.run()),
        "annotate_answer": (page("pages/1_Annotate.py", sme), answer),
    }
    for name, (make, act) in interactions.items():
        out[name] = _stats(_timed(make, act, runs))
        print(name, out[name], flush=True)
    out["worst_p95_s"] = max(v["p95_s"] for v in out.values() if isinstance(v, dict) and "p95_s" in v)
    db.dispose()
    return out


def render(r: dict) -> str:
    rows = "\n".join(f"| {name.replace('_', ' ')} | {r[name]['p50_s']:.2f} s | {r[name]['p95_s']:.2f} s |"
                     for name in ("overview", "taxonomy_browse", "taxonomy_search", "model_try", "annotate_queue",
                                  "annotate_answer"))
    verdict = "met" if r["worst_p95_s"] <= TARGET_S else "missed"
    return f"""## The pages at a library's size (`bench/pages_at_scale.py`)

Command: `{r['command']}` · machine: {r['machine']}

The TIBKAT project `bench/tibkat.py` built ({r['labels']:,} subjects, {r['documents']:,} records, its trained model),
each page through Streamlit's AppTest as a signed-in user; one script run per measurement, {r['overview']['runs']} runs
after a warm-up. The Annotate page's campaign: 5 subjects, pools of 1,000 records, 750 questions waiting.

| page, interaction | p50 | p95 |
|---|---|---|
{rows}

Target: every p95 within {TARGET_S:g} s: **{verdict}** (worst p95 {r['worst_p95_s']:.2f} s).
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=ROOT / "var" / "bench-tibkat")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    out = {**run(args.folder, args.runs), "machine": machine(), "command": command_line("bench.pages_at_scale", argv)}
    publish("pages_at_scale", out, render, not args.no_write)


if __name__ == "__main__":
    main()
