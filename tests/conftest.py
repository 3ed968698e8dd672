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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test module with ``BACKENDS = ("sqlite", "postgresql")`` runs each test that uses ``db`` on both."""
    backends = getattr(metafunc.module, "BACKENDS", None)
    if backends and "db" in metafunc.fixturenames:
        metafunc.parametrize("backend", backends)


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def db(data_dir: Path, backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Database:
    """A fresh database: SQLite in the private data folder, or a new database on the test PostgreSQL server (its
    URL in ``XMTC_DATABASE_URL``, so that worker processes and settings use it too)."""
    url = f"sqlite:///{data_dir / 'xmtc.db'}"
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_database")
        monkeypatch.setenv("XMTC_DATABASE_URL", url)
    database = Database(url)
    database.create_all()
    yield database
    database.dispose()


class PostgresServer:
    """A private PostgreSQL cluster for the test session (Debian's postgresql package: initdb + pg_ctl on a free
    port, run as the ``postgres`` user when the tests run as root), or the server ``XMTC_TEST_POSTGRES_URL`` names."""

    BIN = Path("/usr/lib/postgresql")

    def __init__(self, folder: Path) -> None:
        import shutil
        import subprocess

        self.url = os.environ.get("XMTC_TEST_POSTGRES_URL", "")
        self.folder, self.started = folder, False
        if self.url:
            return
        bins = sorted(self.BIN.glob("*/bin/pg_ctl"))
        pg_ctl = bins[-1] if bins else (Path(p) if (p := shutil.which("pg_ctl")) else None)
        if pg_ctl is None:
            return
        run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        folder.mkdir(parents=True, exist_ok=True)
        if run_as:
            shutil.chown(folder, "postgres")
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.ctl = [*run_as, str(pg_ctl), "-D", str(folder / "data")]
        subprocess.run([*run_as, str(pg_ctl.parent / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "xmtc"],
                       check=True, capture_output=True)
        subprocess.run([*self.ctl, "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                        "-c max_connections=200", "-l", str(folder / "log"), "-w", "start"], check=True, capture_output=True)
        self.started = True
        self.url = f"postgresql+psycopg://xmtc@127.0.0.1:{port}/postgres"

    def stop(self) -> None:
        import subprocess

        if self.started:
            subprocess.run([*self.ctl, "-m", "fast", "stop"], capture_output=True)


@pytest.fixture(scope="session")
def postgres_server():
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="xmtc-pg-"))  # not under pytest's root-only folder: postgres must reach it
    server = PostgresServer(folder)
    if not server.url:
        if os.environ.get("XMTC_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is required (XMTC_REQUIRE_POSTGRES) but neither XMTC_TEST_POSTGRES_URL nor "
                        "pg_ctl (apt-get install postgresql) is available")
        pytest.skip("no PostgreSQL: apt-get install postgresql, or set XMTC_TEST_POSTGRES_URL")
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_server: PostgresServer):
    """The URL of a new, empty database on the test server (dropped afterwards)."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"xmtc_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(postgres_server.url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


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

    def __init__(self, files: dict[str, bytes]) -> None:
        import http.server
        import threading

        self.files = files
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

    @classmethod
    def of_shared(cls, shared: Path) -> DemoMirror:
        """The demo's public files, byte-identical, from the shared data folder (gzipped there)."""
        import gzip

        sources = {
            "test-data-med.csv": shared / "pubmed-mesh/sources/test-data-med.csv.gz",
            "dev-data-med.csv": shared / "pubmed-mesh/sources/dev-data-med.csv.gz",
            "train-data-small.csv": shared / "pubmed-mesh/sources/train-data-small.csv.gz",
            "tree-numbers.tsv": shared / "mesh-2015/tree-numbers.tsv.gz",
        }
        return cls({name: gzip.decompress(path.read_bytes()) for name, path in sources.items()})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def demo_mirror(shared_data: Path):
    mirror = DemoMirror.of_shared(shared_data)
    yield mirror
    mirror.close()
