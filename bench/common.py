"""Shared bench helpers: the machine description and the BENCHMARKS.md sections."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nNumbers measured by the scripts in `bench/` on `../shared/data`; each section names its command.\n"


def machine() -> str:
    """CPU model, cores, memory and torch device, in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, AttributeError):
        pass
    import torch

    device = f"CUDA {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "CPU only"
    return f"{cpu}, {os.cpu_count()} cores{mem}, {device}, torch {torch.__version__}"


def update_benchmarks(section: str, text: str) -> None:
    """Replace (or append) one section of BENCHMARKS.md, delimited by HTML comments."""
    start, end = f"<!-- {section} -->", f"<!-- /{section} -->"
    body = BENCHMARKS.read_text() if BENCHMARKS.exists() else HEADER
    block = f"{start}\n{text.strip()}\n{end}"
    if start in body and end in body:
        body = body[: body.index(start)] + block + body[body.index(end) + len(end):]
    else:
        body = body.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS.write_text(body)


def command_line(module: str, argv: list[str] | None) -> str:
    """The command a bench ran, as it is written in BENCHMARKS.md (``argv`` None: this process's arguments)."""
    return " ".join(["python -m " + module, *(sys.argv[1:] if argv is None else argv)])


def publish(section: str, results: dict[str, Any], render: Any, write: bool = True) -> None:
    """Print a bench's results; unless ``write`` is false, save them as ``bench/results/<section>.json`` and render
    their section of BENCHMARKS.md."""
    import json

    print(json.dumps(results, indent=2))
    if write:
        (ROOT / "bench" / "results" / f"{section}.json").write_text(json.dumps(results, indent=2))
        update_benchmarks(section, render(results))


def build_demo(train_minutes: float) -> tuple[Any, dict[str, Any], float]:
    """In the current (throw-away) data folder: queue what the start page's button queues (the demo, then a first
    model trained in ``train_minutes``) and run it in a worker, as the app's would. Returns the database, the jobs
    by kind and the seconds it took; exits if a job failed."""
    import time

    from core.config import Settings
    from core.jobs import enqueue, list_jobs
    from core.worker import WorkerProcess
    from storage.db import Database

    settings = Settings.from_env()
    db = Database(settings.db_url)
    db.create_all()
    pressed = time.monotonic()
    enqueue(db, "build_demo", None, {"train_minutes": train_minutes}, settings=settings)
    WorkerProcess(db, settings, poll_s=0.2).serve(idle_exit_s=1.0)
    seconds = time.monotonic() - pressed
    jobs = {j.kind: j for p in (None, 1) for j in list_jobs(db, p)}
    failed = {k: j.error for k, j in jobs.items() if j.status != "done"}
    if failed:
        raise SystemExit(f"jobs failed: {failed}")
    return db, jobs, seconds


def signed_in_page(page: str, user_id: int, project_id: int | None = None, timeout_s: float = 60) -> Any:
    """Streamlit's AppTest of ``page`` (not run yet) signed in as ``user_id`` the way the app does it: a server-side
    session on the database the environment names."""
    from streamlit.testing.v1 import AppTest

    from core.accounts.auth import start_session
    from core.config import Settings
    from storage.db import Database

    db = Database(Settings.from_env().db_url)
    token, _ = start_session(db, user_id)
    db.dispose()
    at = AppTest.from_file(str(ROOT / page), default_timeout=timeout_s)
    at.session_state["session_token"] = token
    if project_id is not None:
        at.session_state["project_id"] = project_id
    return at


@contextlib.contextmanager
def temp_data_dir(**env: str) -> Iterator[Path]:
    """A throw-away data folder for one bench run (SQLite inside; no worker started by the app), plus ``env``."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "var"
        os.environ.update({"XMTC_DATA_DIR": str(data_dir), "XMTC_START_WORKER": "0", **env})
        os.environ.pop("XMTC_DATABASE_URL", None)
        yield data_dir


# Each generated section of BENCHMARKS.md (and its results file bench/results/<section>.json) -> the bench module
# whose ``render(results[, section])`` wrote it.
SECTIONS = {
    "ranking": "bench.ranking", "ranking_gpu": "bench.ranking", "label_text": "bench.label_text",
    "cross_more": "bench.cross_more", "active_learning": "bench.active_learning",
    "active_learning_sparse_heads": "bench.active_learning", "annotate": "bench.annotate",
    "load": "bench.annotate", "annotate_postgres": "bench.annotate",
    "evaluate_page": "bench.evaluate_page", "taxonomy": "bench.taxonomy",
    "judge": "bench.judge", "first_hour": "bench.first_hour", "pools_at_scale": "bench.pools_at_scale",
    "api": "bench.api", "tibkat": "bench.tibkat", "pages_at_scale": "bench.pages_at_scale",
    "rerank_variants": "bench.rerank_variants", "rerank_variants_tibkat": "bench.rerank_variants",
    "active_learning_tibkat": "bench.active_learning_tibkat", "tibkat_campaign": "bench.tibkat_campaign",
}


def render_section(section: str) -> str:
    """A section as its bench renders it from its results file."""
    import importlib
    import json

    render = importlib.import_module(SECTIONS[section]).render
    results = json.loads((ROOT / "bench" / "results" / f"{section}.json").read_text())
    return render(results, section) if SECTIONS[section] == "bench.active_learning" else render(results)


def main() -> None:
    """``python -m bench.common``: rewrite every generated section of BENCHMARKS.md from its results file (after a
    change to a bench's rendering); readings written outside the blocks stay."""
    for section in SECTIONS:
        update_benchmarks(section, render_section(section))
        print(f"rendered {section}")


if __name__ == "__main__":
    main()
