"""Job handlers run by the worker (each registered under a job kind)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from core.catalog import servable_labels
from core.config import Settings
from core.encoders import default_encoder_path, encode, load_bi_encoder
from core.errors import XmtcError
from core.index import HnswIndex
from core.jobs import JobContext, job_handler
from core.taxonomy import label_text
from core.versions import active_version, read_manifest, register_version, write_bundle
from storage.models import Project

BUILD_LABEL_INDEX = "build_label_index"


def encoder_for_project(ctx: JobContext, settings: Settings) -> tuple[str, str]:
    """The bi-encoder to embed labels with: the active version's own, else the pretrained one.

    Returns:
        (path, description)
    """
    version = active_version(ctx.db, ctx.project_id)
    if version is not None:
        manifest = read_manifest(Path(version.path))
        enc = manifest.get("bi_encoder")
        if enc:
            path = Path(version.path) / enc if not Path(enc).is_absolute() else Path(enc)
            return str(path), f"bi-encoder of {version.name}"
    return default_encoder_path(settings.encoder_path), "pretrained all-MiniLM-L6-v2"


@job_handler(BUILD_LABEL_INDEX, "Embed labels and build the label index")
def build_label_index(ctx: JobContext) -> dict[str, Any]:
    """Embed every servable label of the active taxonomy and build an HNSW index as a new model version."""
    settings = Settings.from_env()
    labels = servable_labels(ctx.db, ctx.project_id)
    if not labels:
        raise XmtcError("The project has no servable labels: import a taxonomy first.")
    ctx.progress(0.01, f"loading the encoder for {len(labels)} labels", force=True)
    enc_path, enc_desc = encoder_for_project(ctx, settings)
    model = load_bi_encoder(enc_path, settings.device)
    texts = [label_text(lab.pref_label) for lab in labels]

    def on_batch(done: int, total: int) -> None:
        ctx.progress(0.05 + 0.85 * done / total, f"embedded {done:,} of {total:,} labels")

    vectors = encode(model, texts, batch_size=int(ctx.params.get("batch_size", 128)), progress=on_batch)
    ids = np.array([lab.id for lab in labels], dtype=np.int64)
    ctx.progress(0.92, "building the HNSW index", force=True)
    index = HnswIndex(vectors.shape[1], capacity=len(ids))
    index.add(ids, vectors)
    ctx.check_cancel()

    def fill(folder: Path) -> dict[str, Any]:
        index.save(folder / "index")
        np.save(folder / "label_vectors.npy", vectors)
        (folder / "labels.json").write_text(json.dumps(
            [{"id": lab.id, "external_id": lab.external_id, "text": t} for lab, t in zip(labels, texts, strict=True)]))
        return {"bi_encoder": enc_path, "encoder_description": enc_desc, "labels": len(labels),
                "dim": int(vectors.shape[1])}

    bundle = write_bundle(settings.models_dir, ctx.project_id, "zero_shot", fill)
    with ctx.db.session() as s:
        project = s.get(Project, ctx.project_id)
        taxonomy_version_id = project.active_taxonomy_version_id
        has_active = project.active_model_version_id is not None
    version_id = register_version(
        ctx.db, ctx.project_id, "zero_shot", bundle, config={"encoder": enc_desc, "index": "hnsw"},
        metrics={}, taxonomy_version_id=taxonomy_version_id, job_id=ctx.job_id,
        activate=bool(ctx.params.get("activate", not has_active)),
    )
    return {"labels": len(labels), "model_version_id": version_id, "bundle": str(bundle)}


@job_handler("build_demo", "Build the PubMed/MeSH demo project")
def build_demo_job(ctx: JobContext) -> dict[str, Any]:
    """Create the demo project from the configured data folder (then its label-index job is queued)."""
    from core.demo import DEMO_NAME, build_demo

    settings = Settings.from_env()
    data = ctx.params.get("data_dir") or settings.demo_data_dir
    ctx.progress(0.1, "reading the MeSH 2015 tree and the PubMed corpus", force=True)
    result = build_demo(ctx.db, Path(data) if data else None, ctx.params.get("name", DEMO_NAME),
                        user_id=ctx.params.get("user_id"))
    return {"project_id": result.project_id, "taxonomy": result.taxonomy.summary(),
            "corpus": result.corpus.summary(), "index_job_id": result.job_id}
