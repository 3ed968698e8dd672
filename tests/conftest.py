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
    from core.encoders import default_encoder_path

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
