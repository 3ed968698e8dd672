"""Real-browser fixtures: a seeded database, ``streamlit run app.py`` on a free port, Debian's Chromium via Playwright."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.config import ROOT

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("XMTC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    """``streamlit run app.py`` on a free local port over ``data_dir``, with ``env`` on top of this process's."""

    def __init__(self, tmp_path: Path, data_dir: Path, **env: str) -> None:
        full = {**os.environ, "XMTC_DATA_DIR": str(data_dir), "XMTC_START_WORKER": "0", "PYTHONUNBUFFERED": "1", **env}
        full.pop("XMTC_DATABASE_URL", None)
        self.log_path = tmp_path / "streamlit.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop(), after the process)
        port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                                      str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
                                      "--browser.gatherUsageStats", "false"], cwd=ROOT, env=full, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"streamlit did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.3)

    def stop(self) -> None:
        """Stop the app as Ctrl-C would (SIGINT), then make sure it is gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def app_server(tmp_path):
    """Seed a private data folder, then start ``streamlit run app.py`` on it; yields (base url, data folder, world)."""
    data_dir = tmp_path / "var"
    world = seed(data_dir)
    server = StreamlitServer(tmp_path, data_dir)
    try:
        yield server.url, data_dir, world
    finally:
        server.stop()


@pytest.fixture
def fresh_server(tmp_path, demo_mirror):
    """The app on an empty data folder, as after a fresh clone: it starts its own worker, no demo folder is
    configured, and the demo's public files come from the local stand-in server."""
    server = StreamlitServer(tmp_path, tmp_path / "var", XMTC_START_WORKER="1", XMTC_DEMO_DATA="",
                             XMTC_DEMO_MIRROR=demo_mirror.url, XMTC_HEARTBEAT_TIMEOUT="60")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def page(request):
    """A Chromium page (Debian's browser: nothing is downloaded); a screenshot is kept when the test fails."""
    if not CHROMIUM:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        pg.set_default_timeout(30_000)
        try:
            yield pg
        finally:
            failed = getattr(request.node, "rep_call", None)
            if failed is not None and failed.failed:
                ARTIFACTS.mkdir(exist_ok=True)
                pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
                (ARTIFACTS / f"{request.node.name}.html").write_text(pg.content())
            context.close()
            browser.close()


def seed(data_dir: Path) -> dict:
    """An admin, the small cardiology taxonomy and corpus, an active version and a campaign with questions."""
    from sqlalchemy import select

    from core.accounts.auth import create_user
    from core.accounts.projects import create_project
    from core.data.concepts import read_taxonomy
    from core.data.corpus import ColumnMapping, read_csv
    from core.data.imports import import_corpus, import_taxonomy
    from core.data.reports import ImportReport
    from core.newlabels.campaigns import CampaignConfig, add_questions, create_campaign
    from core.newlabels.jobs import store_pools
    from storage.db import Database
    from storage.models import Document, Label
    from tests.fakes import CORPUS_CSV, TAXONOMY_CSV, empty_version, write

    db = Database(f"sqlite:///{data_dir / 'xmtc.db'}")
    db.create_all()
    admin = create_user(db, "ada", "long enough", "admin").id
    pid = create_project(db, "Cardio demo", user_id=admin)
    import_taxonomy(db, pid, read_taxonomy(write(data_dir / "t.csv", TAXONOMY_CSV)), "v1")
    report = ImportReport()
    import_corpus(db, pid, read_csv(write(data_dir / "c.csv", CORPUS_CSV),
                                    ColumnMapping(id="doc_id", labels="tags", split="split"), report), report)
    version = empty_version(db, pid, data_dir / "models", metrics={"P@1": 0.5}, activate=True)
    with db.session() as s:
        onc = s.scalar(select(Label.id).where(Label.external_id == "onc"))
        docs = list(s.scalars(select(Document.id).order_by(Document.id)))
    store_pools(db, pid, {onc: [(d, 0.5) for d in docs]}, None)
    cid = create_campaign(db, pid, "oncology", [onc], admin, CampaignConfig(train_after_positives=100))
    add_questions(db, cid, [(d, onc) for d in docs], version, 1)
    db.dispose()
    return {"project": pid, "campaign": cid, "admin": admin}
