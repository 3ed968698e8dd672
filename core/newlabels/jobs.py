"""New-label workflow jobs: adapt an encoder to the corpus (GPL), build pools, run a campaign's AL iterations."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select, update

from core.config import Settings
from core.data.catalog import DocRow, documents
from core.data.concepts import label_text
from core.data.corpus import checked_corpus, document_text
from core.errors import NotFound, XmtcError
from core.jobs import JobContext, job_handler
from core.model.bicross import stage
from core.model.encoders import default_encoder_path, encode, fingerprint, load_bi_encoder
from core.model.loading import load_ranker
from core.model.ranker import BiCrossRanker
from core.model.versions import active_version, flat_stats, latest_version, read_manifest, register_version, write_bundle
from core.newlabels.campaigns import AL_CONSOLIDATE, AL_ITERATION, CampaignConfig, add_questions, asked_questions
from core.newlabels.corpus_pools import POOL_MAPPING, CorpusSpec, ScaleConfig, copy_pool_documents, embed_corpus, shard_pools
from core.newlabels.gpl import GplConfig, LLMQueries, QueryGenerator, Seq2SeqQueries, TitleQueries, mine, train_gpl
from core.newlabels.pools import EmbeddingCache, default_pool_size, scored_pools
from storage.db import Database
from storage.models import (
    CAMPAIGN_STOPPED,
    QUEUE_OPEN,
    QUEUE_RETIRED,
    Annotation,
    Campaign,
    CampaignLabel,
    Document,
    Label,
    ModelVersion,
    PoolEntry,
    QueueItem,
)

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
    settings = ctx.settings
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
                                  metrics={}, taxonomy_version_id=None, owner=ctx.owner)
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
    settings = ctx.settings
    label_ids = [int(i) for i in ctx.params.get("label_ids", [])]
    if not label_ids:
        raise XmtcError("Choose at least one new label to build a pool for.")
    texts = _new_label_texts(ctx.db, ctx.project_id, label_ids)
    adapted = latest_version(ctx.db, ctx.project_id, GPL_KIND)
    if adapted is not None:
        enc_path, key, encoder_version_id = str(Path(adapted.path) / read_manifest(Path(adapted.path))["bi_encoder"]), \
            f"v{adapted.id}", adapted.id
    else:
        enc_path, key, encoder_version_id = default_encoder_path(settings.encoder_path), "pretrained", None
    if ctx.params.get("corpus"):
        return _pools_from_corpus(ctx, texts, enc_path, key, encoder_version_id)
    docs = pool_documents(ctx.db, ctx.project_id)
    if not docs:
        raise XmtcError("The project has no documents outside the test split to build pools from.")
    size = int(ctx.params.get("pool_size") or default_pool_size(len(docs)))
    ctx.progress(0.01, f"loading the encoder ({key})", force=True)
    encoder = load_bi_encoder(enc_path, settings.device)
    doc_ids = [d.id for d in docs]

    def on_batch(done: int, total: int) -> None:
        ctx.progress(0.02 + 0.9 * done / total, f"embedded {done:,} of {total:,} documents")

    vectors = EmbeddingCache(settings.embeddings_dir / f"project-{ctx.project_id}").get(
        key, encoder, doc_ids, [d.text for d in docs], on_batch)
    ctx.check_cancel()
    label_vecs = dict(zip(texts, encode(encoder, list(texts.values())), strict=True))
    pools = scored_pools(doc_ids, vectors, label_vecs, size)
    store_pools(ctx.db, ctx.project_id, pools, encoder_version_id)
    return {"labels": len(pools), "pool_size": size, "documents": len({d for p in pools.values() for d, _ in p}),
            "encoder": key, **_served_vectors_ahead(ctx)}


def _served_vectors_ahead(ctx: JobContext) -> dict[str, Any]:
    """The active model's vectors of every pooled document, computed now (cached): a campaign's first iteration
    then re-ranks its pools at once."""
    from core.model.labels import resolve_path

    version = active_version(ctx.db, ctx.project_id)
    if version is None or version.kind not in ("bicross", "zero_shot"):
        return {}
    manifest = read_manifest(Path(version.path))
    if not manifest.get("bi_encoder"):
        return {}
    ctx.check_cancel()
    ctx.progress(0.93, f"embedding the pooled documents with the served model (v{version.number})", force=True)
    encoder = load_bi_encoder(resolve_path(Path(version.path), manifest["bi_encoder"]), ctx.settings.device)
    ids, _ = served_pool_vectors(ctx.db, ctx.settings, ctx.project_id, encoder, lambda done, total: ctx.progress(
        0.93 + 0.06 * done / total, f"embedded {done:,} of {total:,} pooled documents with the served model"))
    return {"served_vectors": len(ids)}


def _pools_from_corpus(ctx: JobContext, texts: dict[int, str], enc_path: str, key: str,
                       encoder_version_id: int | None) -> dict[str, Any]:
    """Pools from a corpus file or folder outside the database (embedded into shards in the store, by Ray or in
    this process); only the documents that enter a pool are copied into the project."""
    settings = ctx.settings
    path = checked_corpus(str(ctx.params["corpus"]), settings.corpus_folders)  # queued by anyone: checked again here
    spec = CorpusSpec(str(path), {**POOL_MAPPING, **ctx.params.get("mapping", {})})
    files = len(spec.files())
    cfg = ScaleConfig(engine=settings.pool_engine_name, address=settings.ray_address, device=settings.device)
    ctx.progress(0.01, f"embedding the corpus ({files} file(s), {cfg.engine} engine, encoder {key})", force=True)
    started = time.monotonic()

    def on_block(done: int) -> None:
        rate = done / max(1e-6, time.monotonic() - started)
        ctx.progress(0.02, f"embedded {done:,} corpus documents ({rate:,.0f} docs/s)")

    corpus = embed_corpus(spec, enc_path, key, settings.embeddings_dir, cfg, on_block, ctx.check_cancel)
    ctx.progress(0.9, f"searching {len(corpus.shards)} shard(s) of {corpus.rows:,} documents", force=True)
    encoder = load_bi_encoder(enc_path, settings.device)
    size = int(ctx.params.get("pool_size") or default_pool_size(corpus.rows))
    found = shard_pools(corpus, dict(zip(texts, encode(encoder, list(texts.values())), strict=True)), size)
    ctx.check_cancel()
    ids = copy_pool_documents(ctx.db, ctx.project_id, spec, {d for pool in found.values() for d, _ in pool})
    pools = {lab: [(ids[d], score) for d, score in pool if d in ids] for lab, pool in found.items()}
    store_pools(ctx.db, ctx.project_id, pools, encoder_version_id)
    return {"labels": len(pools), "pool_size": size, "documents": len(ids), "encoder": key, "corpus": spec.path,
            "corpus_documents": corpus.rows, "engine": corpus.engine, "embedding_seconds": corpus.seconds,
            **_served_vectors_ahead(ctx)}


def pooled_documents(db: Database, project_id: int) -> tuple[list[int], list[str]]:
    """Every live document in one of the project's pools (ids, by id) and the text the models read."""
    with db.session() as s:
        rows = s.execute(select(Document.id, Document.title, Document.abstract, Document.keywords)
                         .where(Document.id.in_(select(PoolEntry.document_id).where(PoolEntry.project_id == project_id)),
                                Document.removed.is_(False)).order_by(Document.id)).all()
    return [i for i, *_ in rows], [document_text(t or "", a or "", k) for _, t, a, k in rows]


def served_pool_vectors(db: Database, settings: Settings, project_id: int, encoder: Any,
                        progress: Any = None) -> tuple[list[int], np.ndarray]:
    """Every pooled document of the project (ids) and its vector by ``encoder`` (the served bi-encoder), cached on
    disk per encoder weights: a campaign's iterations re-rank their pools without embedding them again (a library's
    30,000 pooled records take minutes), and the pool job computes them ahead for the active model."""
    ids, texts = pooled_documents(db, project_id)
    if not ids:
        return [], np.zeros((0, 0), dtype=np.float32)
    cache = EmbeddingCache(settings.embeddings_dir / f"project-{project_id}")
    return ids, cache.get(f"served-{fingerprint(encoder)}", encoder, ids, texts, progress)


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


# --- a campaign's active-learning iteration -------------------------------------------------------


def _campaign_answers(db: Database, campaign_id: int) -> tuple[dict[tuple[int, int], str], set[tuple[int, int]]]:
    """The campaign's answers by question (several SMEs: the majority; a tie is "unsure") and those trained on."""
    from core.newlabels.campaigns import SKIP

    votes: dict[tuple[int, int], Counter] = {}
    trained: set[tuple[int, int]] = set()
    with db.session() as s:
        # In the order they were given: giving up on a label and sampling answers to recall follow that order.
        for d, lab, value, it in s.execute(select(Annotation.document_id, Annotation.label_id, Annotation.answer,
                                                  Annotation.trained_in_iteration)
                                           .where(Annotation.campaign_id == campaign_id, Annotation.answer != SKIP)
                                           .order_by(Annotation.answered_at, Annotation.id)):
            votes.setdefault((d, lab), Counter())[value] += 1
            if it is not None:
                trained.add((d, lab))
    answers = {}
    for q, c in votes.items():
        (top, n), *rest = c.most_common()
        answers[q] = "unsure" if rest and rest[0][1] == n else top
    return answers, trained


@dataclass
class CampaignState:
    """A campaign's cycle rebuilt from its model version and its answers (what every campaign job starts from)."""

    campaign_id: int
    name: str
    iteration: int
    cfg: CampaignConfig
    ranker: BiCrossRanker
    cycle: Any  # ActiveLearningCycle
    texts: dict[int, str]
    held_out: list[DocRow]
    fresh: list[tuple[int, int]]  # answers not learned yet


def _campaign_state(ctx: JobContext, campaign_id: int) -> CampaignState | None:
    """The campaign's cycle from its model version, its answers recorded (None when the campaign was deleted)."""
    from core.newlabels.active_learning import ActiveLearningCycle, ALConfig

    settings = ctx.settings
    with ctx.db.session() as s:
        campaign = s.get(Campaign, campaign_id)
        if campaign is None:
            return None
        cfg = CampaignConfig.from_dict(campaign.config)
        version = s.get(ModelVersion, campaign.model_version_id) if campaign.model_version_id else None
        labels = s.execute(select(Label.id, Label.pref_label, Label.alt_labels)
                           .join(CampaignLabel, CampaignLabel.label_id == Label.id)
                           .where(CampaignLabel.campaign_id == campaign_id, Label.deprecated.is_(False),
                                  Label.removed_in_version_id.is_(None))).all()
        iteration, strategy, name = campaign.iteration, campaign.strategy, campaign.name
    if version is None:
        raise XmtcError("The campaign's model version was deleted: stop this campaign and start a new one.")
    new_labels = {i: label_text(pref, tuple(alts or ())) for i, pref, alts in labels}
    if not new_labels:
        raise XmtcError("Every label of this campaign was deleted or deprecated: stop the campaign.")
    pools = load_pools(ctx.db, ctx.project_id, list(new_labels))
    every = documents(ctx.db, ctx.project_id)  # one read serves training (non-test) and the held-out metric (test)
    docs = [d for d in every if d.split != "test"]
    texts = {d.id: d.text for d in docs}
    # Replay teaches the labels the model knew before: a campaign label's own gold never leaks in.
    replay = {d.id: set(d.gold) - set(new_labels) for d in docs if set(d.gold) - set(new_labels)}
    ctx.progress(0.02, f"loading {version.kind} v{version.number}", force=True)
    ranker = load_ranker(version.path, settings.device, trainable=True)
    if not isinstance(ranker, BiCrossRanker):
        raise XmtcError("Active learning needs a bi-encoder model (BiCross or zero-shot), not the classifier baseline.")
    # ALConfig's defaults are what bench.active_learning measures; a campaign may override them.
    overrides = {k: v for k, v in cfg.al.items() if k in ALConfig.__dataclass_fields__}
    al_cfg = ALConfig(**{**overrides, "questions_per_iteration": cfg.questions_per_fill, "strategy": strategy})
    cycle = ActiveLearningCycle(ranker, texts, replay, new_labels, pools, al_cfg, resume=True)
    ctx.progress(0.03, "reading the pooled documents' vectors (embedded once per model)", force=True)
    pooled, vectors = served_pool_vectors(ctx.db, settings, ctx.project_id, ranker.bi_encoder, lambda done, total:
                                          ctx.progress(0.03, f"embedded {done:,} of {total:,} pooled documents"))
    cycle.remember_vectors([d for d in pooled if d in texts], vectors[[d in texts for d in pooled]])
    answers, trained = _campaign_answers(ctx.db, campaign_id)
    cycle.answers, cycle.trained = answers, trained & set(answers)
    cycle.record([], [])  # the new labels' priors follow the answers so far
    return CampaignState(campaign_id, name, iteration, cfg, ranker, cycle, texts,
                         [d for d in every if d.split == "test"], [q for q in answers if q not in trained])


def _save_campaign_version(ctx: JobContext, st: CampaignState, number: int, stats: dict[str, Any],
                           metrics: dict[str, float], learned: set[tuple[int, int]], **extra: Any) -> int:
    """Save the campaign's model as a version, mark ``learned`` answers and point the campaign at the version."""
    settings = ctx.settings
    # Encoders that learned nothing are not copied again (a bundle is never changed: the new one points at them).
    copy = bool({"bi", "cross"} & set(stats))
    bundle = write_bundle(settings.models_dir, ctx.project_id, "bicross", lambda folder: {
        **st.ranker.save(folder, copy_encoders=copy), "campaign_id": st.campaign_id, "iteration": number, **extra})
    new_version = register_version(
        ctx.db, ctx.project_id, "bicross", bundle, config={"campaign": st.name, "campaign_id": st.campaign_id,
                                                           "iteration": number, **extra, **flat_stats(stats)},
        metrics=metrics, taxonomy_version_id=None, owner=ctx.owner, activate=st.cfg.activate_versions)
    with ctx.db.session() as s:
        ctx.owner.hold(s)  # a reaped job marks nothing learned
        for d, lab in learned:
            s.execute(update(Annotation).where(Annotation.campaign_id == st.campaign_id, Annotation.document_id == d,
                                               Annotation.label_id == lab, Annotation.trained_in_iteration.is_(None))
                      .values(trained_in_iteration=number))
        campaign = s.get(Campaign, st.campaign_id)
        campaign.iteration, campaign.model_version_id = number, new_version
        # Labels deleted mid-campaign: their waiting questions are withdrawn.
        s.execute(update(QueueItem).where(QueueItem.campaign_id == st.campaign_id, QueueItem.status == QUEUE_OPEN,
                                          QueueItem.label_id.not_in(list(st.cycle.new_labels)))
                  .values(status=QUEUE_RETIRED))
    return new_version


@job_handler(AL_ITERATION, "Active-learning iteration (train on the answers, re-rank the queue)")
def al_iteration(ctx: JobContext) -> dict[str, Any]:
    """Serve the campaign's labels (first run) or learn the answers so far, save a version, refill the queue."""
    campaign_id = int(ctx.params["campaign_id"])
    with ctx.db.session() as s:
        campaign = s.get(Campaign, campaign_id)
        if campaign is None or campaign.status == CAMPAIGN_STOPPED:
            return {"skipped": "the campaign was stopped or deleted"}
    st = _campaign_state(ctx, campaign_id)
    if st is None:
        return {"skipped": "the campaign was stopped or deleted"}
    cycle, fresh = st.cycle, st.fresh
    metrics = _campaign_metrics(st.ranker, cycle.new_labels, fresh, cycle.answers, st.texts, st.held_out,
                                cycle.doc_vectors)
    stats = cycle.train(stage(ctx.progress, 0.05, 0.8)) if fresh else {"skipped": "no answer to learn yet"}
    ctx.check_cancel()
    learned = cycle.trained & set(fresh)
    number = st.iteration + 1 if learned or st.iteration == 0 else st.iteration
    new_version = _save_campaign_version(ctx, st, number, stats, metrics, learned)
    ctx.progress(0.85, "re-ranking the pools and refilling the queue", force=True)
    asked = asked_questions(ctx.db, campaign_id)
    for q in asked:
        cycle.answers.setdefault(q, "unsure")  # claimed right now: not to be selected again
    questions = cycle.select()
    added = add_questions(ctx.db, campaign_id, questions, new_version, number)
    return {"iteration": number, "model_version_id": new_version, "learned": len(learned), "queued": added,
            "metrics": metrics, "train": flat_stats(stats)}


@job_handler(AL_CONSOLIDATE, "Consolidate a campaign (the bi-encoder learns its answers, with replay)")
def al_consolidate(ctx: JobContext) -> dict[str, Any]:
    """After a campaign: the bi-encoder learns every confirmed answer with replay of old gold pairs, every label and
    the neighbour memory are embedded again (:meth:`ActiveLearningCycle.consolidate`); a version is saved."""
    st = _campaign_state(ctx, int(ctx.params["campaign_id"]))
    if st is None:
        return {"skipped": "the campaign was deleted"}
    stats = st.cycle.consolidate(stage(ctx.progress, 0.05, 0.9))
    if "skipped" in stats:
        return stats
    ctx.check_cancel()
    learned = set(st.fresh)  # the prototypes, memory, sparse heads and bi-encoder have them all now
    number = st.iteration + 1
    version = _save_campaign_version(ctx, st, number, stats, {}, learned, consolidated=True)
    return {"iteration": number, "model_version_id": version, "learned": len(learned), "train": flat_stats(stats)}


def _campaign_metrics(ranker: BiCrossRanker, new_labels: dict[int, str], fresh: list[tuple[int, int]],
                      answers: dict[tuple[int, int], str], texts: dict[int, str], held_out: list[DocRow],
                      vectors: Any = None, held_out_docs: int = 200, old_docs: int = 100) -> dict[str, float]:
    """Recall@10 (bi-encoder) before this iteration's training (``vectors``: the answered documents' vectors, known).

    ``answered_R@10``: the campaign's labels on the documents SMEs just said "yes" to (not learned yet);
    ``heldout_R@10``: the campaign's labels on test documents whose gold carries one (when the project has any);
    ``old_R@10``: the labels the model knew before, on test documents (is anything forgotten?).
    """
    from core.model.metrics import evaluate

    out: dict[str, float] = {}
    yes: dict[int, set[int]] = {}
    for d, lab in fresh:
        if answers[(d, lab)] == "yes":
            yes.setdefault(d, set()).add(lab)
    if yes:
        ids = sorted(yes)
        ranked = ranker.rank([texts[d] for d in ids], k=10, rerank=False,
                             doc_vectors=vectors(ids) if vectors is not None else None)
        out["answered_R@10"] = evaluate([[p.label_id for p in r] for r in ranked], [yes[d] for d in ids], ("R@10",))["R@10"]
    new = [d for d in held_out if set(d.gold) & set(new_labels)][:held_out_docs]
    old = [d for d in held_out if set(d.gold) - set(new_labels)][:old_docs]
    docs = list({d.id: d for d in new + old}.values())  # one ranking pass serves both measures
    if docs:
        ranked = dict(zip([d.id for d in docs], ranker.rank([d.text for d in docs], k=10, rerank=False), strict=True))
        for key, part, gold in (("heldout_R@10", new, lambda d: set(d.gold) & set(new_labels)),
                                ("old_R@10", old, lambda d: set(d.gold) - set(new_labels))):
            if part:
                out[key] = evaluate([[p.label_id for p in ranked[d.id]] for d in part], [gold(d) for d in part],
                                    ("R@10",))["R@10"]
    return {k: round(v, 4) for k, v in out.items()}
