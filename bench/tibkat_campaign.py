"""A campaign for 30 new subjects on the TIBKAT project, in a real browser (Chromium), as on the demo.

Usage (after ``bench.active_learning_tibkat``, whose initial model and GPL pools it serves):
    python -m bench.tibkat_campaign [--answers 100] [--no-write]

A copy of the TIBKAT project's database in a data folder of its own, cleared of what earlier benches left there; the
initial model (trained without the 30 subjects) registered and active; the 30 subjects' pools (1,000 records each,
the AL bench's) stored as the pool job stores them, and the served model's vectors of the pooled records kept in the
embeddings cache, as the pool job computes them ahead. Then ``streamlit run app.py`` with its own worker, and in
Chromium: the lead starts the campaign (30 subjects typed into the picker), the first questions arrive without a
reload, an SME (in a browser of their own) answers with the keyboard (Y / N, the oracle being ``train_en``'s gold)
while iterations learn, and the lead's progress view (per label, the Recall@10 chart, the iterations table) shows
them. Times: first questions, each answer (key press to the next question on screen), each iteration job.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.active_learning_tibkat import FOLDER
from bench.common import ROOT, command_line, machine, publish
from bench.ranking import log

APP_FOLDER = ROOT / "var" / "bench-tibkat-campaign"
SHOTS = ROOT / "bench" / "results"


def prepare(folder: Path, source: Path, initial: Path | None = None) -> dict[str, Any]:
    """The data folder: the project's database, the initial model active, the pools, the served vectors cached."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with sqlite3.connect(source / "xmtc.db") as src, sqlite3.connect(folder / "xmtc.db") as dst:
        src.backup(dst)  # a consistent copy of the SQLite file
        # What earlier benches left in the project (a campaign, its queued job, other labels' pools): this one starts
        # from the imported records, the taxonomy and the trained model only.
        dst.executescript("PRAGMA foreign_keys = ON; DELETE FROM campaigns; DELETE FROM pool_entries;"
                          "DELETE FROM jobs WHERE status IN ('queued', 'running');")
    os.environ.update({"XMTC_DATA_DIR": str(folder), "XMTC_START_WORKER": "0"})
    os.environ.pop("XMTC_DATABASE_URL", None)
    from sqlalchemy import select

    from core.accounts.auth import create_user
    from core.accounts.projects import add_member
    from core.config import Settings
    from core.data.catalog import documents
    from core.model.encoders import fingerprint, load_bi_encoder
    from core.model.loading import load_ranker
    from core.model.versions import register_version
    from core.newlabels.jobs import pooled_documents, served_pool_vectors, store_pools
    from core.newlabels.pools import EmbeddingCache
    from storage.db import Database
    from storage.models import Label

    if initial is None:
        initial = Path(json.loads((ROOT / "bench" / "results" / "active_learning_tibkat.json").read_text())["initial_bundle"])
    settings = Settings.from_env()
    db = Database(settings.db_url)
    pid = 1
    lead = create_user(db, "lead", "long enough", "admin").id
    sme = create_user(db, "sme", "long enough", "annotator", by_user_id=lead).id
    add_member(db, pid, "sme", by_user_id=lead)
    version = register_version(db, pid, "bicross", initial, config={"note": "trained without the 30 subjects"},
                               metrics={}, taxonomy_version_id=None, activate=True, user_id=lead)
    pools = {int(k): [(int(d), float(sc)) for d, sc in v] for k, v in
             json.loads((source / "al" / "pools.json").read_text()).items()}
    store_pools(db, pid, pools, None)
    # The pool job computes the served model's vectors of the pooled records ahead; the initial model's neighbour
    # memory holds exactly them (it embedded the records it trained on), so they are cached from there.
    ranker = load_ranker(initial, "cpu")
    train = [d for d in documents(db, pid) if d.split == "train"]
    from core.model.bicross import validation_split

    al_idx, _ = validation_split(len(train), 0.1, 0)
    row = {train[i].id: r for r, i in enumerate(al_idx)}
    pooled, texts = pooled_documents(db, pid)
    EmbeddingCache(settings.embeddings_dir / f"project-{pid}").put(
        f"served-{fingerprint(ranker.bi_encoder)}", pooled, texts, ranker.memory.vectors[[row[i] for i in pooled]])
    ids, _ = served_pool_vectors(db, settings, pid, load_bi_encoder(ranker.bi_path, "cpu"))  # a cache hit
    assert len(ids) == len(pooled)
    with db.session() as s:
        names = dict(s.execute(select(Label.id, Label.pref_label).where(Label.id.in_(list(pools)))).all())
    db.dispose()
    return {"version": version, "lead": lead, "sme": sme, "labels": [names[i] for i in sorted(pools)],
            "pooled_records": len(pooled)}


def claimed(db: Any, user: int) -> tuple[int, int] | None:
    from sqlalchemy import select

    from storage.models import QueueItem

    with db.session() as s:
        row = s.execute(select(QueueItem.document_id, QueueItem.label_id).where(
            QueueItem.claimed_by == user, QueueItem.status == "claimed")).first()
    return tuple(row) if row else None


def count(db: Any, model: Any, *where: Any) -> int:
    from sqlalchemy import func, select

    with db.session() as s:
        return s.scalar(select(func.count(model.id)).where(*where)) or 0


def drive(folder: Path, setup: dict[str, Any], answers: int) -> dict[str, Any]:
    """The browser flow; returns its times."""
    from playwright.sync_api import sync_playwright
    from sqlalchemy import select

    from core.config import Settings
    from storage.db import Database
    from storage.models import Annotation, DocumentLabel, Job
    from tests.e2e.conftest import CHROMIUM, StreamlitServer
    from tests.e2e.test_browser import choose

    db = Database(Settings.from_env().db_url)
    with db.session() as s:
        gold = {(d, lab) for d, lab in s.execute(select(DocumentLabel.document_id, DocumentLabel.label_id))}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = StreamlitServer(Path(tmp), folder, XMTC_START_WORKER="1", XMTC_HEARTBEAT_TIMEOUT="120")
        pw = None
        try:
            pw = sync_playwright().start()
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                        "--disable-dev-shm-usage"])
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(120_000)
            sign_in(page, server.url, "lead")
            nav = page.get_by_test_id("stSidebarNav")
            nav.get_by_role("link", name="Annotate").click()
            page.get_by_role("textbox", name="Campaign name").fill("thirty new subjects")
            started = time.monotonic()
            for name in setup["labels"]:
                choose(page, "New labels", name)
            out["typing_30_subjects_s"] = round(time.monotonic() - started, 1)
            page.get_by_role("button", name="Start the campaign").click()
            clicked = time.monotonic()
            page.get_by_text("Does this document belong to the label?").wait_for(timeout=600_000)
            out["first_questions_s"] = round(time.monotonic() - clicked, 1)
            log(f"first questions after {out['first_questions_s']} s")
            page.screenshot(path=str(SHOTS / "tibkat_campaign_question.png"), full_page=True)
            # An SME answers (in a browser of their own): the lead's page also carries the campaign form.
            lead_page, page = page, browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(120_000)
            sign_in(page, server.url, "sme")
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Annotate").click()
            latencies, yes, repressed = [], 0, 0
            user = setup["sme"]
            q = shown(page, db, None, user)
            for n in range(4 * answers):  # at least ``answers``, and on until the "yes" answers queue an iteration
                if q is None or (n >= answers and count(db, Job, Job.kind == "al_iteration") >= 2):
                    break
                key = "y" if q in gold else "n"
                yes += key == "y"
                before = count(db, Annotation)
                pressed = time.monotonic()
                page.locator("body").press(key)
                while count(db, Annotation) == before:
                    if time.monotonic() - pressed > 20 * (1 + repressed):  # the press was lost: press it again
                        repressed += 1
                        page.locator("body").press(key)
                    time.sleep(0.05)
                q = shown(page, db, q, user)
                latencies.append(time.monotonic() - pressed)
            out["key_presses_repeated"] = repressed
            out.update(answered=len(latencies), yes=yes, answer_s_median=round(statistics.median(latencies), 2),
                       answer_s_p95=round(sorted(latencies)[int(0.95 * (len(latencies) - 1))], 2))
            log(f"{len(latencies)} answers ({yes} yes), median {out['answer_s_median']} s")
            # The iteration the answers queued: wait for it, then see it in the campaign's progress.
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                with db.session() as s:
                    jobs = s.scalars(select(Job).where(Job.kind == "al_iteration").order_by(Job.id)).all()
                if len(jobs) >= 2 and all(j.status in ("done", "failed") for j in jobs):
                    break
                time.sleep(2)
            out["iterations"] = [{"status": j.status, "seconds": round((j.finished_at - j.started_at).total_seconds(), 1)
                                  if j.finished_at and j.started_at else None,
                                  "learned": (j.result or {}).get("learned"), "queued": (j.result or {}).get("queued"),
                                  "error": j.error} for j in jobs]
            page = lead_page
            page.reload()
            page.get_by_text("Campaign progress", exact=True).click()
            page.get_by_text("Recall@10 per iteration").first.wait_for()
            page.get_by_text("Iterations (answers learned", exact=False).first.wait_for()
            page.get_by_text("Recall@10 per iteration").first.scroll_into_view_if_needed()
            page.wait_for_timeout(2000)  # the chart draws
            page.screenshot(path=str(SHOTS / "tibkat_campaign_progress.png"))  # the page scrolls inside: the view
            out["progress_shown"] = True
        finally:
            if pw is not None:
                pw.stop()
            server.stop()
            out["server_log_tail"] = server.log_path.read_text()[-1500:] if "progress_shown" not in out else ""
    db.dispose()
    return out


def shown(page: Any, db: Any, previous: tuple[int, int] | None, user: int, timeout_s: float = 60) -> tuple[int, int] | None:
    """Wait for the SME's next claimed question (not ``previous``) to be on screen, its answer keys live and the app
    idle; returns (document, label), or None when none comes within ``timeout_s``."""
    from storage.models import Document, Label

    deadline = time.monotonic() + timeout_s
    while (q := claimed(db, user)) in (None, previous):
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)
    with db.session() as s:
        title, label = s.get(Document, q[0]).title, s.get(Label, q[1]).pref_label
    page.get_by_text(f"Label: {label}", exact=True).filter(visible=True).first.wait_for()
    page.get_by_text(title or "(no title)", exact=True).filter(visible=True).first.wait_for()
    page.get_by_text("Keys: Y yes").filter(visible=True).first.wait_for()
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidgetRunningIcon],"
                           " [data-testid=stStatusWidgetRunningManIcon]')")
    return q


def sign_in(page: Any, url: str, username: str) -> None:
    page.goto(url)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill("long enough")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as").wait_for()


def render(r: dict[str, Any]) -> str:
    its = "; ".join(f"{i + 1}: {it['seconds']} s ({it['status']}, learned {it['learned']}, queued {it['queued']})"
                    for i, it in enumerate(r["iterations"]))
    return f"""## A campaign on the TIBKAT project in the browser (`bench/tibkat_campaign.py`)

Command: `{r['command']}` · machine: {r['machine']}

The 41k-record project with the initial model of `bench/active_learning_tibkat.py` (trained without the 30 subjects)
active, the 30 subjects' pools ({r['pooled_records']:,} records), `streamlit run app.py` with its own worker,
Chromium (Playwright):

- The lead typed the 30 subjects into the campaign form ({r['typing_30_subjects_s']} s) and pressed Start: the first
  questions were on screen {r['first_questions_s']} s later, without a reload.
- An SME (in a browser of their own) gave {r['answered']} answers with the keyboard ({r['yes']} yes, the oracle being
  `train_en`'s gold): key press to the next question on screen with its keys live, median {r['answer_s_median']} s,
  p95 {r['answer_s_p95']} s; key presses the page did not take (pressed again after 20 s):
  {r.get('key_presses_repeated', 0)}.
- Iteration jobs (the first serves the subjects and fills the queue; the next learns the answers): {its}.
- The progress (per label, the Recall@10 chart, the iterations table) showed the learned iteration:
  {r['progress_shown']}. Screenshots: `bench/results/tibkat_campaign_question.png`, `tibkat_campaign_progress.png`.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=APP_FOLDER, help="the data folder made for the run")
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--initial", type=Path, default=None, help="the initial bundle (default: the AL bench's)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    setup = prepare(args.folder, FOLDER, args.initial)
    log(f"prepared {args.folder}: {setup['pooled_records']:,} pooled records")
    out = {**drive(args.folder, setup, args.answers), "pooled_records": setup["pooled_records"],
           "machine": machine(), "command": command_line("bench.tibkat_campaign", argv)}
    publish("tibkat_campaign", out, render, not args.no_write)


if __name__ == "__main__":
    main()
