"""Shared fixtures: a fresh SQLite database per test, the real data folder, the bundled model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.config import ROOT
from storage.db import Database

SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data folder; the app and workers read it from the environment."""
    folder = tmp_path / "var"
    monkeypatch.setenv("XMTC_DATA_DIR", str(folder))
    monkeypatch.delenv("XMTC_DATABASE_URL", raising=False)
    monkeypatch.setenv("XMTC_START_WORKER", "0")
    return folder


@pytest.fixture
def db(data_dir: Path) -> Database:
    database = Database(f"sqlite:///{data_dir / 'xmtc.db'}")
    database.create_all()
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it exists on the project's machines only)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def encoder_path() -> str:
    from core.model.encoders import default_encoder_path

    return default_encoder_path(os.environ.get("XMTC_ENCODER_PATH", ""))


@pytest.fixture(autouse=True)
def keep_main_module():
    """AppTest runs a page as ``__main__``; put the real one back so that processes spawned later by other
    tests (which re-import ``__main__``) do not run a page script."""
    import sys

    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


class DemoMirror:
    """A real HTTP server on 127.0.0.1 standing in for the demo's public sources: it serves each public file by
    name, byte-identical (the shared folder keeps them gzipped), and counts the requests. ``corrupt`` names files
    served with one byte changed."""

    def __init__(self, shared: Path) -> None:
        import gzip
        import http.server
        import threading

        sources = {
            "test-data-med.csv": shared / "pubmed-mesh/sources/test-data-med.csv.gz",
            "dev-data-med.csv": shared / "pubmed-mesh/sources/dev-data-med.csv.gz",
            "train-data-small.csv": shared / "pubmed-mesh/sources/train-data-small.csv.gz",
            "tree-numbers.tsv": shared / "mesh-2015/tree-numbers.tsv.gz",
        }
        self.files = {name: gzip.decompress(path.read_bytes()) for name, path in sources.items()}
        self.corrupt: set[str] = set()
        self.requests: list[str] = []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                mirror.requests.append(name)
                body = mirror.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                if name in mirror.corrupt:
                    body = body[:100] + bytes([body[100] ^ 1]) + body[101:]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/files/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def demo_mirror(shared_data: Path):
    mirror = DemoMirror(shared_data)
    yield mirror
    mirror.close()
