"""Job handlers run by the worker (each registered under a job kind)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.bicross import make_label_table
from core.catalog import servable_labels
from core.config import Settings
from core.encoders import default_encoder_path, default_reranker_path, load_bi_encoder
from core.errors import XmtcError
from core.jobs import JobContext, job_handler
from core.ranker import BiCrossRanker
from core.versions import active_version, flat_stats, read_manifest, register_version, write_bundle
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


def _project_taxonomy(ctx: JobContext) -> tuple[int | None, bool]:
    with ctx.db.session() as s:
        project = s.get(Project, ctx.project_id)
        return project.active_taxonomy_version_id, project.active_model_version_id is not None


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
    table = make_label_table(labels, [])

    def on_batch(done: int, total: int) -> None:
        ctx.progress(0.05 + 0.85 * done / total, f"embedded {done:,} of {total:,} labels")

    ranker = BiCrossRanker.build(model, table, progress=on_batch)
    ctx.check_cancel()

    def fill(folder: Path) -> dict[str, Any]:
        manifest = ranker.save(folder, copy_encoders=False)
        return {**manifest, "bi_encoder": enc_path, "encoder_description": enc_desc}

    bundle = write_bundle(settings.models_dir, ctx.project_id, "zero_shot", fill)
    taxonomy_version_id, has_active = _project_taxonomy(ctx)
    version_id = register_version(
        ctx.db, ctx.project_id, "zero_shot", bundle, config={"encoder": enc_desc, "index": "hnsw"},
        metrics={}, taxonomy_version_id=taxonomy_version_id, job_id=ctx.job_id,
        activate=bool(ctx.params.get("activate", not has_active)),
    )
    return {"labels": len(labels), "model_version_id": version_id, "bundle": str(bundle)}


TRAIN_MODEL = "train_model"


@job_handler(TRAIN_MODEL, "Train the label ranking model")
def train_model(ctx: JobContext) -> dict[str, Any]:
    """Train BiCross (and optionally the baseline) on the train split; each becomes a model version."""
    from core.bicross import evaluate_ranker, fit_baseline, fit_bicross, stage
    from core.catalog import documents
    from core.ranker import load_ranker
    from core.training import TrainConfig

    settings = Settings.from_env()
    cfg = TrainConfig.from_dict(ctx.params.get("config", {}))
    labels = servable_labels(ctx.db, ctx.project_id)
    docs = documents(ctx.db, ctx.project_id)
    train = [d for d in docs if d.split != "test"]
    test = [d for d in docs if d.split == "test"][: int(ctx.params.get("eval_docs", 200))]
    if not labels:
        raise XmtcError("The project has no servable labels: import a taxonomy first.")
    if not any(d.gold for d in train):
        raise XmtcError("There is nothing to train on: no training document has a gold label.")
    parts = [p for p, on in (("bicross", cfg.train_bi or cfg.train_cross), ("baseline", cfg.train_baseline)) if on]
    if not parts:
        raise XmtcError("Nothing to train: choose the bi-encoder, the cross-encoder or the baseline.")
    pretrained = default_encoder_path(settings.encoder_path)
    base = None
    active = active_version(ctx.db, ctx.project_id)
    if active is not None and active.kind in ("bicross", "zero_shot") and not (cfg.train_bi and cfg.train_cross):
        base = load_ranker(active.path, settings.device, trainable=True)  # supplies the parts not retrained
    # Parts not retrained are kept from the active version: its bi-encoder is the starting point.
    start_from = base.bi_path if (not cfg.train_bi and base is not None) else pretrained
    texts, gold = [d.text for d in train], [set(d.gold) for d in train]
    taxonomy_version_id, _ = _project_taxonomy(ctx)
    share = 1.0 / len(parts)
    made: dict[str, Any] = {}
    for n, part in enumerate(parts):
        lo = n * share
        if part == "bicross":
            cross_init = default_reranker_path(cfg.cross_init or settings.reranker_path, pretrained,
                                               settings.pretrained_dir)
            fit = fit_bicross(start_from, settings.device, labels, texts, gold, cfg,
                              stage(ctx.progress, lo, lo + share * 0.85), cross_init=cross_init, base=base)
        else:
            fit = fit_baseline(pretrained, settings.device, labels, texts, gold, cfg,
                               stage(ctx.progress, lo, lo + share * 0.85))
        ctx.progress(lo + share * 0.86, f"evaluating {part} on {len(test)} test documents", force=True)
        metrics = evaluate_ranker(fit.ranker, [d.text for d in test], [set(d.gold) for d in test]) if test else {}
        ctx.check_cancel()
        stats = flat_stats(fit.stats)

        def fill(folder: Path, ranker: Any = fit.ranker, stats: dict = stats, metrics: dict = metrics) -> dict:
            return {**ranker.save(folder), "training_config": cfg.as_dict(), "training_stats": stats,
                    "metrics": metrics}

        bundle = write_bundle(settings.models_dir, ctx.project_id, part, fill)
        version_id = register_version(
            ctx.db, ctx.project_id, part, bundle, config={**cfg.as_dict(), **stats},
            metrics={k: round(v, 4) for k, v in metrics.items()}, taxonomy_version_id=taxonomy_version_id,
            job_id=ctx.job_id, activate=part == "bicross" and bool(ctx.params.get("activate", True)),
        )
        made[part] = {"model_version_id": version_id, "metrics": metrics}
    return made


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


@job_handler("import_taxonomy", "Import a taxonomy")
def import_taxonomy_job(ctx: JobContext) -> dict[str, Any]:
    """Read, validate and store a taxonomy file as the project's first version (all or nothing)."""
    from core.imports import import_taxonomy
    from core.taxonomy import read_taxonomy

    path = Path(ctx.params["path"])
    ctx.progress(0.1, f"reading {path.name}", force=True)
    taxonomy = read_taxonomy(path, ctx.params.get("format") or None)
    ctx.progress(0.6, f"storing {len(taxonomy):,} labels", force=True)
    report = import_taxonomy(ctx.db, ctx.project_id, taxonomy, ctx.params.get("version_name") or path.name,
                             ctx.params.get("user_id"))
    return {"report": report.summary(), "labels": len(taxonomy)}


@job_handler("import_corpus", "Import documents")
def import_corpus_job(ctx: JobContext) -> dict[str, Any]:
    """Read and store a corpus file with its label assignments (all or nothing unless skipping bad rows)."""
    from core.corpus import ColumnMapping, read_annif_tsv, read_csv, read_jsonl
    from core.imports import import_corpus
    from core.reports import ImportReport

    path = Path(ctx.params["path"])
    fmt = ctx.params.get("format", "csv")
    mapping = ColumnMapping(**ctx.params.get("mapping", {}))
    report = ImportReport()
    if fmt in ("csv", "tsv"):
        records = read_csv(path, mapping, report, delimiter="\t" if fmt == "tsv" else ",")
    elif fmt == "jsonl":
        records = read_jsonl(path, mapping, report)
    elif fmt == "annif-tsv":
        records = read_annif_tsv(path, report)
    else:
        raise XmtcError(f"Unknown corpus format {fmt!r}; use csv, tsv, jsonl or annif-tsv.")
    ctx.progress(0.1, f"importing {path.name}", force=True)
    import_corpus(ctx.db, ctx.project_id, records, report, on_error=ctx.params.get("on_error", "abort"),
                  user_id=ctx.params.get("user_id"))
    return {"report": report.summary(), "warnings": report.warnings[:20], "skipped": report.skipped[:50]}
