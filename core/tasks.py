"""Job handlers run by the worker (each registered under a job kind)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.config import Settings
from core.data.catalog import servable_labels
from core.errors import XmtcError
from core.jobs import JobContext, job_handler
from core.model.bicross import make_label_table
from core.model.encoders import default_encoder_path, default_reranker_path, load_bi_encoder
from core.model.ranker import BiCrossRanker
from core.model.versions import active_version, flat_stats, read_manifest, register_version, write_bundle
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
    settings = ctx.settings
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
    metrics = evaluate_on_test(ctx, ranker, 0.9, "the zero-shot model") if ctx.params.get("evaluate", True) else {}

    def fill(folder: Path) -> dict[str, Any]:
        manifest = ranker.save(folder, copy_encoders=False)
        return {**manifest, "bi_encoder": enc_path, "encoder_description": enc_desc}

    bundle = write_bundle(settings.models_dir, ctx.project_id, "zero_shot", fill)
    taxonomy_version_id, has_active = _project_taxonomy(ctx)
    version_id = register_version(
        ctx.db, ctx.project_id, "zero_shot", bundle, config={"encoder": enc_desc, "index": "hnsw"},
        metrics=metrics, taxonomy_version_id=taxonomy_version_id, owner=ctx.owner,
        activate=bool(ctx.params.get("activate", not has_active)),
    )
    return {"labels": len(labels), "model_version_id": version_id, "bundle": str(bundle),
            "zero_shot": {"metrics": metrics}}


def evaluation_documents(ctx: JobContext, docs: list[Any] | None = None) -> list[Any]:
    """The project's test split, cut to the job's ``eval_docs`` when that is above 0 (default: all of it)."""
    from core.data.catalog import documents

    test = [d for d in (documents(ctx.db, ctx.project_id) if docs is None else docs) if d.split == "test"]
    limit = int(ctx.params.get("eval_docs") or 0)
    return test[:limit] if limit > 0 else test


def evaluate_on_test(ctx: JobContext, ranker: Any, at: float, what: str, test: list[Any] | None = None) -> dict[str, Any]:
    """P@1/P@5/R@10/nDCG@10/R@30 of ``ranker`` on the test split, with ``test_docs`` saying on how many documents
    ({} without a test split)."""
    from core.model.bicross import evaluate_ranker

    test = evaluation_documents(ctx) if test is None else test
    if not test:
        return {}
    ctx.progress(at, f"evaluating {what} on {len(test):,} test documents", force=True)
    metrics = evaluate_ranker(ranker, [d.text for d in test], [set(d.gold) for d in test])
    return {**{k: round(v, 4) for k, v in metrics.items()}, "test_docs": len(test)}


TRAIN_MODEL = "train_model"


@job_handler(TRAIN_MODEL, "Train the label ranking model")
def train_model(ctx: JobContext) -> dict[str, Any]:
    """Train BiCross (and optionally the baseline) on the train split; each becomes a model version."""
    from core.data.catalog import documents
    from core.model.bicross import fit_baseline, fit_bicross, stage
    from core.model.loading import load_ranker
    from core.model.training import TrainConfig

    started = time.monotonic()
    settings = ctx.settings
    cfg = TrainConfig.from_dict(ctx.params.get("config", {}))
    deadline = started + 60 * cfg.time_budget_min if cfg.time_budget_min > 0 else None
    labels = servable_labels(ctx.db, ctx.project_id)
    docs = documents(ctx.db, ctx.project_id)
    train = [d for d in docs if d.trains]
    test = evaluation_documents(ctx, docs)
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
    notes: list[str] = []  # what a training left out (the time budget's plan, a part that could not be fitted)
    for n, part in enumerate(parts):
        lo = n * share
        if part == "bicross":
            cross_init = default_reranker_path(cfg.cross_init or settings.reranker_path, pretrained,
                                               settings.pretrained_dir)
            fit = fit_bicross(start_from, settings.device, labels, texts, gold, cfg,
                              stage(ctx.progress, lo, lo + share * 0.85), cross_init=cross_init, base=base,
                              deadline=deadline, eval_docs=len(test))
        else:
            fit = fit_baseline(pretrained, settings.device, labels, texts, gold, cfg,
                               stage(ctx.progress, lo, lo + share * 0.85))
        budget = fit.stats.get("budget", {})
        metrics = evaluate_on_test(ctx, fit.ranker, lo + share * 0.86, part, test[:budget.get("eval_docs") or None])
        notes += [f"{part}: {note}" for note in fit.stats.get("notes", [])]
        ctx.check_cancel()
        stats = flat_stats(fit.stats)

        def fill(folder: Path, ranker: Any = fit.ranker, stats: dict = stats, metrics: dict = metrics) -> dict:
            return {**ranker.save(folder), "training_config": cfg.as_dict(), "training_stats": stats,
                    "metrics": metrics}

        bundle = write_bundle(settings.models_dir, ctx.project_id, part, fill)
        version_id = register_version(
            ctx.db, ctx.project_id, part, bundle, config={**cfg.as_dict(), **stats},
            metrics=metrics, taxonomy_version_id=taxonomy_version_id,
            owner=ctx.owner, activate=part == "bicross" and bool(ctx.params.get("activate", True)),
        )
        made[part] = {"model_version_id": version_id, "metrics": metrics}
    made["minutes"] = round((time.monotonic() - started) / 60, 2)
    if notes:
        made["budget_notes"] = notes
    if not test:
        made["warning"] = ("The project has no test documents: the model was not evaluated. Import documents with a "
                           "test split (or hold out a share when importing) to see its metrics.")
    return made


@job_handler("build_demo", "Build the PubMed/MeSH demo project")
def build_demo_job(ctx: JobContext) -> dict[str, Any]:
    """Create the demo project from the data folder the job was queued with, or from the public files (downloaded
    into the data folder's cache, checksums verified); its label-index job (and a first training) is queued."""
    from core.data.demo import DEMO_NAME, build_demo, locate_demo

    settings = ctx.settings
    cache = settings.demo_cache
    where = str(settings.demo_data_dir) if settings.demo_data_dir else f"the public sources (cache {cache})"
    ctx.progress(0.0, f"locating the demo files in {where}", force=True)
    files = locate_demo(settings.demo_data_dir, cache, settings.demo_mirror, lambda f, m: ctx.progress(0.6 * f, m))
    ctx.progress(0.6, f"reading the MeSH 2015 tree and the PubMed corpus from {files.folder}", force=True)
    result = build_demo(ctx.db, files, ctx.params.get("name", DEMO_NAME), user_id=ctx.params.get("user_id"),
                        train_minutes=float(ctx.params.get("train_minutes") or 0), settings=settings)
    return {"project_id": result.project_id, "taxonomy": result.taxonomy.summary(),
            "corpus": result.corpus.summary(), "index_job_id": result.job_id, "data_folder": str(files.folder),
            "report": f"project built from {files.folder}: {result.corpus.summary()}"}


@job_handler("import_taxonomy", "Import a taxonomy")
def import_taxonomy_job(ctx: JobContext) -> dict[str, Any]:
    """Read, validate and store a taxonomy file as the project's first version (all or nothing)."""
    from core.data.concepts import read_taxonomy
    from core.data.imports import import_taxonomy

    path = Path(ctx.params["path"])
    ctx.progress(0.1, f"reading {path.name}", force=True)
    taxonomy = read_taxonomy(path, ctx.params.get("format") or None, ctx.params.get("label_columns") or None)
    ctx.progress(0.6, f"storing {len(taxonomy):,} labels", force=True)
    report = import_taxonomy(ctx.db, ctx.project_id, taxonomy, ctx.params.get("version_name") or path.name,
                             ctx.params.get("user_id"))
    return {"report": report.summary(), "labels": len(taxonomy)}


@job_handler("import_corpus", "Import documents")
def import_corpus_job(ctx: JobContext) -> dict[str, Any]:
    """Read and store a corpus file with its label assignments (all or nothing unless skipping bad rows)."""
    from core.data.corpus import ColumnMapping, read_corpus
    from core.data.imports import HOLDOUT_NOTE, import_corpus
    from core.data.reports import ImportReport

    path = Path(ctx.params["path"])
    report = ImportReport()
    records = read_corpus(path, ctx.params.get("format", "csv"), ColumnMapping(**ctx.params.get("mapping", {})), report)
    split = ctx.params.get("split_value") or None
    if split:  # the whole file is one split (a row's own split column still wins); nothing is held out of it
        records = (replace(r, split=r.split or split) for r in records)
    ctx.progress(0.1, f"importing {path.name}", force=True)
    import_corpus(ctx.db, ctx.project_id, records, report, on_error=ctx.params.get("on_error", "abort"),
                  user_id=ctx.params.get("user_id"), holdout=0.0 if split else float(ctx.params.get("holdout") or 0.0))
    held = [w for w in report.warnings if w.startswith(HOLDOUT_NOTE)]
    return {"report": "; ".join([report.summary(), *held]), "warnings": report.warnings[:20],
            "skipped": report.skipped[:50]}
