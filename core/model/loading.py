"""Loading whichever ranker a bundle holds (BiCross or the baseline head)."""

from __future__ import annotations

from pathlib import Path

from core.errors import ModelError
from core.model.baseline import BaselineRanker
from core.model.labels import LabelRanker
from core.model.ranker import BiCrossRanker
from core.model.versions import read_manifest


def load_ranker(bundle: str | Path, device: str = "auto", trainable: bool = False) -> LabelRanker:
    """Load whichever ranker a bundle holds (``trainable``: its cross-encoder in PyTorch, for further training).

    Raises:
        ModelError: a missing, incomplete or incompatible bundle.
    """
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    kind = manifest.get("kind")
    if kind in ("zero_shot", "bicross"):
        return BiCrossRanker.load(bundle, manifest, device, trainable)
    if kind == "baseline":
        return BaselineRanker.load(bundle, manifest, device)
    raise ModelError(f"The bundle {bundle} holds an unknown model kind {kind!r}.")
