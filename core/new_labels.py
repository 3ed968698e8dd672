"""New-label workflow jobs: adapt an encoder to the corpus (GPL) and build the new labels' document pools."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from core.bicross import stage
from core.config import Settings
from core.corpus import document_text
from core.encoders import default_encoder_path, encode, load_bi_encoder
from core.errors import NotFound, XmtcError
from core.gpl import GplConfig, LLMQueries, QueryGenerator, Seq2SeqQueries, TitleQueries, mine, train_gpl
from core.jobs import JobContext, job_handler
from core.pools import EmbeddingCache, default_pool_size, scored_pools
from core.ranker import BiCrossRanker, load_ranker
from core.taxonomy import label_text
from core.versions import active_version, latest_version, read_manifest, register_version, write_bundle
from storage.db import Database
from storage.models import Document, Label, PoolEntry

ADAPT_ENCODER = "adapt_encoder"
BUILD_POOLS = "build_pools"
GPL_KIND = "gpl"
GENERATORS = {"title": "titles (offline, no generator needed)", "seq2seq": "a local seq2seq model",
              "llm": "an OpenAI-compatible LLM (XMTC_LLM_*)"}


@dataclass(frozen=True)
class PoolDocument:
    id: int
    title: str
    abstract: str
    text: str  # what the models read


def pool_documents(db: Database, project_id: int) -> list[PoolDocument]:
    """The documents a pool may hold (and GPL adapts to): every live document outside the test split."""
    with db.session() as s:
        rows = s.execute(select(Document.id, Document.title, Document.abstract, Document.keywords)
                         .where(Document.project_id == project_id, Document.removed.is_(False),
                                (Document.split != "test") | Document.split.is_(None))
                         .order_by(Document.id)).all()
    return [PoolDocument(i, t or "", a or "", document_text(t or "", a or "", k)) for i, t, a, k in rows]


def query_generator(name: str, settings: Settings, path: str = "") -> QueryGenerator:
    """The GPL query generator by name: ``title`` (offline default), ``seq2seq`` (a local checkpoint) or ``llm``."""
    if name == "title":
        return TitleQueries()
    if name == "seq2seq":
        if not path:
            raise XmtcError("The seq2seq query generator needs the folder of a local checkpoint (e.g. a doc2query T5).")
        return Seq2SeqQueries(path, settings.device if settings.device != "auto" else "cpu")
    if name == "llm":
        if not settings.llm_model:
            raise XmtcError("Set XMTC_LLM_MODEL (and XMTC_LLM_BASE_URL for a local server) to generate queries with an LLM.")
        from openai import OpenAI

        client = OpenAI(base_url=settings.llm_base_url or None, api_key=settings.llm_api_key or "not-needed")
        return LLMQueries(client, settings.llm_model)
    raise XmtcError(f"Unknown query generator {name!r}; use title, seq2seq or llm.")


def _teacher_ranker(db: Database, project_id: int, device: str) -> BiCrossRanker:
    version = active_version(db, project_id)
    ranker = load_ranker(version.path, device) if version is not None else None
    if not isinstance(ranker, BiCrossRanker) or ranker.cross is None:
        raise XmtcError("GPL needs a cross-encoder to score its pseudo-queries: train a model with the cross-encoder "
                        "and activate it first.")
    return ranker


@job_handler(ADAPT_ENCODER, "Adapt an encoder to the corpus (GPL)")
def adapt_encoder(ctx: JobContext) -> dict[str, Any]:
    """GPL: pseudo-queries per document, hard negatives, the active cross-encoder's margins, MarginMSE.

    The adapted bi-encoder is a separate model version (kind ``gpl``) that only builds pools; it never serves.
    """
    settings = Settings.from_env()
    cfg = GplConfig(**{k: v for k, v in ctx.params.get("config", {}).items() if k in GplConfig.__dataclass_fields__})
    docs = pool_documents(ctx.db, ctx.project_id)
    if len(docs) < 2:
        raise XmtcError("GPL needs at least two documents outside the test split: import documents first.")
    generator = query_generator(ctx.params.get("generator", "title"), settings, ctx.params.get("generator_path", ""))
    ctx.progress(0.01, "loading the encoder and the teacher cross-encoder", force=True)
    teacher = _teacher_ranker(ctx.db, ctx.project_id, settings.device).cross
    pretrained = default_encoder_path(settings.encoder_path)
    encoder = load_bi_encoder(pretrained, settings.device, cfg.max_seq_length)
    examples = mine(encoder, teacher, [(d.title, d.abstract) for d in docs], generator, cfg, stage(ctx.progress, 0.02, 0.3))
    ctx.check_cancel()
    stats = train_gpl(encoder, examples, cfg, stage(ctx.progress, 0.3, 0.97))
    ctx.check_cancel()
    stats.update(generator=generator.name, documents=len(docs))

    def fill(folder: Path) -> dict[str, Any]:
        encoder.save(str(folder / "bi_encoder"))
        return {"bi_encoder": "bi_encoder", "gpl_config": cfg.as_dict(), "gpl_stats": stats}

    bundle = write_bundle(settings.models_dir, ctx.project_id, GPL_KIND, fill)
    version_id = register_version(ctx.db, ctx.project_id, GPL_KIND, bundle, config={**cfg.as_dict(), **stats},
                                  metrics={}, taxonomy_version_id=None, job_id=ctx.job_id)
    return {"model_version_id": version_id, **stats}


def _new_label_texts(db: Database, project_id: int, label_ids: Sequence[int]) -> dict[int, str]:
    with db.session() as s:
        rows = s.execute(select(Label.id, Label.pref_label, Label.alt_labels)
                         .where(Label.project_id == project_id, Label.id.in_(list(label_ids)))).all()
    found = {i: label_text(pref, tuple(alts or ())) for i, pref, alts in rows}
    missing = sorted(set(label_ids) - set(found))
    if missing:
        raise NotFound(f"Label(s) {missing[:5]} are not in this project's taxonomy: add them to the taxonomy first.")
    return found


@job_handler(BUILD_POOLS, "Build the new labels' document pools")
def build_pools_job(ctx: JobContext) -> dict[str, Any]:
    """Each new label's top-N documents by the latest domain-adapted encoder (the pretrained one if none)."""
    settings = Settings.from_env()
    label_ids = [int(i) for i in ctx.params.get("label_ids", [])]
    if not label_ids:
        raise XmtcError("Choose at least one new label to build a pool for.")
    texts = _new_label_texts(ctx.db, ctx.project_id, label_ids)
    docs = pool_documents(ctx.db, ctx.project_id)
    if not docs:
        raise XmtcError("The project has no documents outside the test split to build pools from.")
    size = int(ctx.params.get("pool_size") or default_pool_size(len(docs)))
    adapted = latest_version(ctx.db, ctx.project_id, GPL_KIND)
    if adapted is not None:
        enc_path, key, encoder_version_id = str(Path(adapted.path) / read_manifest(Path(adapted.path))["bi_encoder"]), \
            f"v{adapted.id}", adapted.id
    else:
        enc_path, key, encoder_version_id = default_encoder_path(settings.encoder_path), "pretrained", None
    ctx.progress(0.01, f"loading the encoder ({key})", force=True)
    encoder = load_bi_encoder(enc_path, settings.device)
    doc_ids = [d.id for d in docs]

    def on_batch(done: int, total: int) -> None:
        ctx.progress(0.02 + 0.9 * done / total, f"embedded {done:,} of {total:,} documents")

    vectors = EmbeddingCache(settings.data_dir / "embeddings" / f"project-{ctx.project_id}").get(
        key, encoder, doc_ids, [d.text for d in docs], on_batch)
    ctx.check_cancel()
    label_vecs = dict(zip(texts, encode(encoder, list(texts.values())), strict=True))
    pools = scored_pools(doc_ids, vectors, label_vecs, size)
    store_pools(ctx.db, ctx.project_id, pools, encoder_version_id)
    return {"labels": len(pools), "pool_size": size, "documents": len({d for p in pools.values() for d, _ in p}),
            "encoder": key}


def store_pools(db: Database, project_id: int, pools: dict[int, list[tuple[int, float]]],
                encoder_version_id: int | None) -> None:
    """Replace these labels' pools (one transaction)."""
    with db.session() as s:
        s.execute(delete(PoolEntry).where(PoolEntry.label_id.in_(list(pools))))
        s.add_all([PoolEntry(project_id=project_id, label_id=lid, document_id=d, rank=r, score=score,
                             encoder_version_id=encoder_version_id)
                   for lid, pool in pools.items() for r, (d, score) in enumerate(pool)])


def load_pools(db: Database, project_id: int, label_ids: Sequence[int] | None = None) -> dict[int, list[int]]:
    """Each label's pool (live documents only), best first."""
    with db.session() as s:
        q = (select(PoolEntry.label_id, PoolEntry.document_id).join(Document, Document.id == PoolEntry.document_id)
             .where(PoolEntry.project_id == project_id, Document.removed.is_(False)))
        if label_ids is not None:
            q = q.where(PoolEntry.label_id.in_(list(label_ids)))
        out: dict[int, list[int]] = {}
        for lid, d in s.execute(q.order_by(PoolEntry.label_id, PoolEntry.rank)):
            out.setdefault(lid, []).append(d)
    return out
