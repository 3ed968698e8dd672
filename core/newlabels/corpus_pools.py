"""Pools from a corpus larger than the project: embedded into vector shards in the artifact store, searched shard by
shard.

A pool corpus is a JSONL/Parquet/CSV file or a folder of them (millions of documents), read in streaming. It is
embedded once per encoder into Parquet shards (``id``, ``file``, ``row``, ``vector``) by one of two engines:

- ``ray``: a Ray Data pipeline (one read task per file, each streaming blocks of rows; ``map_batches`` with the
  encoder in actors, one GPU each when the cluster has GPUs). The same code runs in Ray's local mode on one machine
  and on a cluster (``XMTC_RAY_ADDRESS``); ``pip install .[scale]``.
- ``local``: the same reader, encoder and shard writer in this process (no Ray needed).

A label's pool is its top-k documents by cosine over all shards: each shard's top-k (one matrix product, exact),
merged. Ties are broken by corpus position, so the pools equal the single-process builder's
(``pools.scored_pools``) whatever the sharding. Memory holds one block (reading, embedding) or one shard (search),
never the whole corpus. Only the documents that enter a pool are copied into the project's database
(``copy_pool_documents``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.data.catalog import CORPUS_SPLIT, TEST_SPLIT
from core.data.corpus import ColumnMapping, DocumentRecord, corpus_files, guess_format, read_corpus
from core.data.reports import ImportReport
from core.errors import XmtcError
from core.model.encoders import similarities

ENGINES = ("ray", "local")
SHARD_COLUMNS = ("id", "file", "row", "vector")
MANIFEST = "manifest.json"
SEARCH_ROWS = 16_384  # documents read from a shard at a time by the search
# The text a pool document is read by: the corpus's labels (if any) are not read.
POOL_MAPPING = {"id": "id", "title": "title", "abstract": "abstract", "labels": None}


@dataclass(frozen=True)
class CorpusSpec:
    """A pool corpus: a file or folder, and which keys hold the id, title and abstract."""

    path: str
    mapping: dict[str, Any] = field(default_factory=lambda: dict(POOL_MAPPING))

    def files(self) -> list[Path]:
        return corpus_files(self.path)

    def column_mapping(self) -> ColumnMapping:
        return ColumnMapping(**{**POOL_MAPPING, **self.mapping})

    def fingerprint(self) -> str:
        """Changes when a file is added, removed, rewritten or the mapping changes (a stale shard set is not reused)."""
        digest = hashlib.sha1(json.dumps(self.column_mapping().__dict__, sort_keys=True, default=str).encode())
        for f in self.files():
            st = f.stat()
            digest.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ScaleConfig:
    """How a pool corpus is embedded.

    Attributes:
        engine: ``ray`` (a Ray Data pipeline; local mode unless ``address`` is set) or ``local`` (this process).
        address: a Ray cluster (``ray://host:10001`` or ``auto``); empty: start Ray locally on this machine.
        actors: encoder actors; 0: one per GPU of the cluster, else one.
        cpus_per_actor: CPU threads each actor's encoder uses; 0: all this machine's cores (local mode, one actor).
        block_rows: documents per block read from a file (the unit of streaming).
        batch_rows: documents an actor embeds at once (sorted by length inside, so padding stays short).
        shard_rows: documents per vector shard written to the store.
        device: ``auto``/``cpu``/``cuda`` for the encoder.
    """

    engine: str = "ray"
    address: str = ""
    actors: int = 0
    cpus_per_actor: int = 0
    block_rows: int = 1000
    batch_rows: int = 1000
    shard_rows: int = 50_000
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise XmtcError(f"Unknown embedding engine {self.engine!r}; use {' or '.join(ENGINES)}.")
        if min(self.block_rows, self.batch_rows, self.shard_rows) < 1 or self.actors < 0 or self.cpus_per_actor < 0:
            raise XmtcError("Block, batch and shard sizes must be positive; actors and CPUs per actor 0 (auto) or more.")


# --- reading -------------------------------------------------------------------------------------------------------


def file_blocks(path: Path, file_no: int, mapping: ColumnMapping, rows: int) -> Iterator[Any]:
    """One corpus file as Arrow tables of ``rows`` documents (``id``, ``text``, ``file``, ``row``), streamed.

    Rows that are not documents (no id, no text, bad JSON) are skipped, as in an import; ``row`` counts every row.
    """
    import pyarrow as pa

    def table(part: list[tuple[str, str, int]]) -> pa.Table:
        return pa.table({"id": [p[0] for p in part], "text": [p[1] for p in part],
                         "file": pa.array([file_no] * len(part), pa.int32()),
                         "row": pa.array([p[2] for p in part], pa.int64())})

    report = ImportReport()
    part: list[tuple[str, str, int]] = []
    for rec in read_corpus(path, guess_format(path), mapping, report):
        part.append((rec.external_id, rec.text, report.rows_read))
        if len(part) == rows:
            yield table(part)
            part = []
    if part:
        yield table(part)


def corpus_blocks(spec: CorpusSpec, rows: int) -> Iterator[Any]:
    """Every file of the corpus, in order, as blocks (see ``file_blocks``)."""
    mapping = spec.column_mapping()
    for i, f in enumerate(spec.files()):
        yield from file_blocks(f, i, mapping, rows)


def corpus_records(spec: CorpusSpec, wanted: set[str]) -> dict[str, DocumentRecord]:
    """The records of the corpus whose id is in ``wanted`` (one streaming pass; the first of a repeated id wins)."""
    mapping = spec.column_mapping()
    found: dict[str, DocumentRecord] = {}
    for f in spec.files():
        for rec in read_corpus(f, guess_format(f), mapping, ImportReport()):
            if rec.external_id in wanted and rec.external_id not in found:
                found[rec.external_id] = rec
                if len(found) == len(wanted):
                    return found
    return found


# --- embedding -----------------------------------------------------------------------------------------------------


class Embedder:
    """Adds each document's vector to a block (the Ray Data actor; also used in-process by the local engine)."""

    def __init__(self, encoder_path: str, device: str = "auto", threads: int = 0) -> None:
        import torch

        from core.model.encoders import load_bi_encoder

        if threads:
            torch.set_num_threads(threads)
        self.model = load_bi_encoder(encoder_path, device)

    def __call__(self, block: Any) -> Any:
        import pyarrow as pa

        from core.model.encoders import encode

        vectors = encode(self.model, block.column("text").to_pylist())
        flat = pa.array(vectors.reshape(-1), pa.float32())
        return block.drop_columns(["text"]).append_column("vector", pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]))


class ShardWriter:
    """Streams embedded blocks into Parquet shards of at least ``shard_rows`` documents, each block a row group as it
    arrives (nothing is buffered beyond the block being written)."""

    def __init__(self, folder: Path, shard_rows: int) -> None:
        self.folder, self.shard_rows = folder, shard_rows
        self.shards: list[str] = []
        self.rows = 0
        self.dim = 0
        self._writer: Any = None
        self._in_shard = 0

    def add(self, block: Any) -> None:
        import pyarrow.parquet as pq

        block = block.select(list(SHARD_COLUMNS))
        if self._writer is None:
            name = f"shard-{len(self.shards):05d}.parquet"
            self._writer = pq.ParquetWriter(self.folder / name, block.schema)
            self.shards.append(name)
        self._writer.write_table(block)
        self._in_shard += block.num_rows
        self.rows += block.num_rows
        self.dim = self.dim or block.schema.field("vector").type.list_size
        if self._in_shard >= self.shard_rows:
            self.flush()

    def flush(self) -> None:
        """Close the shard being written (the next block starts a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer, self._in_shard = None, 0


@dataclass(frozen=True)
class EmbeddedCorpus:
    """A corpus's vector shards in the store, and how they were made."""

    folder: Path
    rows: int
    dim: int
    shards: list[str]
    engine: str
    seconds: float
    encoder: str
    corpus: str

    def shard_paths(self) -> list[Path]:
        return [self.folder / s for s in self.shards]


def _read(folder: Path) -> EmbeddedCorpus | None:
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return None
    values = json.loads(manifest.read_text())
    return EmbeddedCorpus(folder=folder, **values)


def shard_folder(root: Path, spec: CorpusSpec, encoder_key: str) -> Path:
    """Where a corpus's shards for one encoder live in the store (``root`` is e.g. ``Settings.embeddings_dir``)."""
    return root / "corpora" / f"{Path(spec.path).name}-{spec.fingerprint()}" / encoder_key


def embed_corpus(spec: CorpusSpec, encoder_path: str, encoder_key: str, root: Path, cfg: ScaleConfig,
                 progress: Callable[[int], None] | None = None, check_cancel: Callable[[], None] | None = None,
                 reuse: bool = True) -> EmbeddedCorpus:
    """Embed the corpus into shards under ``root`` (reused when this corpus and encoder were embedded before).

    ``progress(documents_done)`` is called after each block; ``check_cancel()`` may raise to stop (nothing is
    left behind: shards are written to a temporary folder, renamed when complete).
    """
    final = shard_folder(root, spec, encoder_key)
    done = _read(final) if reuse else None
    if done is not None:
        return done
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    writer = ShardWriter(tmp, cfg.shard_rows)
    start = time.perf_counter()
    try:
        blocks = _ray_blocks(spec, encoder_path, cfg) if cfg.engine == "ray" else _local_blocks(spec, encoder_path, cfg)
        for block in blocks:
            writer.add(block)
            if progress is not None:
                progress(writer.rows)
            if check_cancel is not None:
                check_cancel()
        writer.flush()
    except BaseException:
        with contextlib.suppress(Exception):
            writer.flush()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if writer.rows == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise XmtcError(f"The corpus {spec.path} holds no readable document (each needs an id and a title or abstract).")
    made = {"rows": writer.rows, "dim": writer.dim, "shards": writer.shards, "engine": cfg.engine,
            "seconds": round(time.perf_counter() - start, 2), "encoder": encoder_key, "corpus": spec.path}
    (tmp / MANIFEST).write_text(json.dumps(made, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    tmp.replace(final)
    return EmbeddedCorpus(folder=final, **made)


def _local_blocks(spec: CorpusSpec, encoder_path: str, cfg: ScaleConfig) -> Iterator[Any]:
    embedder = Embedder(encoder_path, cfg.device, cfg.cpus_per_actor)
    for block in corpus_blocks(spec, cfg.batch_rows):
        yield embedder(block)


# --- the Ray engine ------------------------------------------------------------------------------------------------


def ray_available() -> bool:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


def start_ray(address: str = "") -> Any:
    """Connect to the configured Ray cluster, or start Ray on this machine (once per process)."""
    if not ray_available():
        raise XmtcError("The Ray engine needs Ray: `pip install .[scale]` (or use the local engine).")
    import ray

    if not ray.is_initialized():
        logging.getLogger("ray").setLevel(logging.WARNING)
        try:
            ray.init(address=address or None, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                     logging_level=logging.WARNING, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise XmtcError(f"Could not start or reach Ray at {address or 'this machine'}: {exc}"[:600]) from exc
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    return ray


def _corpus_datasource(spec: CorpusSpec, rows: int) -> Any:
    from functools import partial

    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    files, mapping = spec.files(), spec.column_mapping()

    class CorpusFiles(Datasource):
        """One read task per corpus file, each streaming its blocks (a file is never read whole)."""

        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[ReadTask]:
            return [ReadTask(partial(file_blocks, f, i, mapping, rows),
                             BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=(str(f),)))
                    for i, f in enumerate(files)]

    return CorpusFiles()


def _ray_blocks(spec: CorpusSpec, encoder_path: str, cfg: ScaleConfig) -> Iterator[Any]:
    ray = start_ray(cfg.address)
    gpus = int(ray.cluster_resources().get("GPU", 0)) if cfg.device != "cpu" else 0
    nodes = [n["Resources"].get("CPU", 1) for n in ray.nodes() if n.get("Alive")] or [os.cpu_count() or 1]
    # With GPUs: one actor per GPU. Without: one actor per machine, its encoder using that machine's cores (in local
    # mode as the single-process encoder does: one process, every core); the read tasks are light and share them.
    actors = cfg.actors or (gpus or len(nodes))
    cpus = cfg.cpus_per_actor or max(1, int(min(nodes)) // max(1, actors // len(nodes)))
    import ray.data

    ds = ray.data.read_datasource(_corpus_datasource(spec, cfg.block_rows), num_cpus=0.25)
    ds = ds.map_batches(Embedder, fn_constructor_kwargs={"encoder_path": encoder_path, "threads": cpus,
                                                         "device": "cuda" if gpus else "cpu"},
                        batch_size=cfg.batch_rows, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=actors),
                        num_gpus=1 if gpus else 0, num_cpus=_actor_cpus(gpus, cpus, cfg.address))
    try:
        yield from ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=1)
    except Exception as exc:  # a bad file in a read task arrives wrapped in Ray's errors: say what the file said
        cause = _domain_error(exc)
        if cause is None:
            raise
        raise cause from None


def _domain_error(exc: BaseException | None) -> XmtcError | None:
    """The tool's own error inside Ray's wrappers (``RayTaskError.cause``, ``__cause__`` chains), if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, XmtcError) and type(exc).__module__.startswith("core."):
            return exc
        exc = getattr(exc, "cause", None) or exc.__cause__
    return None


def _actor_cpus(gpus: int, cpus: int, address: str) -> float:
    """The CPUs an encoder actor reserves: little beside a GPU; on a CPU cluster all but half a core of a machine (so
    no two actors share one, and its read tasks still fit); in local mode one (the read tasks take a quarter each)."""
    if gpus:
        return 0.5
    return max(0.5, cpus - 0.5) if address else 1


# --- searching the shards ------------------------------------------------------------------------------------------


def shard_pools(corpus: EmbeddedCorpus, label_vectors: Mapping[int, np.ndarray],
                size: int) -> dict[int, list[tuple[str, float]]]:
    """Each label's ``size`` nearest corpus documents (id, cosine), best first: the top ``size`` of each part of a
    shard read (``SEARCH_ROWS`` documents), merged.

    Exact per shard (one matrix product over the new labels); ties go to the earlier corpus position, as in
    ``pools.scored_pools`` over the whole corpus at once.
    """
    import pyarrow.parquet as pq

    labels = list(label_vectors)
    if not labels:
        return {}
    queries = np.stack([np.asarray(label_vectors[lab], dtype=np.float32) for lab in labels])
    best: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [(np.empty(0, np.float32), np.empty(0, np.int64),
                                                              np.empty(0, object))] * len(labels)
    for table in (batch for path in corpus.shard_paths()
                  for batch in pq.ParquetFile(path).iter_batches(batch_size=SEARCH_ROWS)):
        vectors = table.column("vector").flatten().to_numpy().reshape(table.num_rows, corpus.dim)
        order = (table.column("file").to_numpy().astype(np.int64) << 40) | table.column("row").to_numpy()
        ids = np.asarray(table.column("id").to_pylist(), dtype=object)
        sims = similarities(vectors, queries)
        for j in range(len(labels)):
            cand = _top(sims[:, j], order, size)
            scores, pos, names = best[j]
            merged_scores = np.concatenate([scores, sims[cand, j]])
            merged_pos = np.concatenate([pos, order[cand]])
            keep = np.lexsort((merged_pos, -merged_scores))[:size]
            best[j] = (merged_scores[keep], merged_pos[keep], np.concatenate([names, ids[cand]])[keep])
    return {int(lab): [(str(n), float(s)) for s, n in zip(best[j][0], best[j][2], strict=True)]
            for j, lab in enumerate(labels)}


def _top(scores: np.ndarray, order: np.ndarray, size: int) -> np.ndarray:
    """Row indices of the ``size`` best scores (ties by position), unsorted beyond that."""
    if len(scores) <= size:
        return np.arange(len(scores))
    cut = np.partition(-scores, size - 1)[size - 1]
    rows = np.flatnonzero(-scores <= cut)  # everything tied with the last place stays a candidate
    return rows[np.lexsort((order[rows], -scores[rows]))][:size]


def copy_pool_documents(db: Any, project_id: int, spec: CorpusSpec, ext_ids: Iterable[str],
                        split: str = CORPUS_SPLIT) -> dict[str, int]:
    """Copy the corpus documents with these ids into the project (those already there are kept); id -> document id.

    A corpus id that names one of the project's test documents, or a removed one, maps to nothing: a test document
    is never asked about (nor learned from), and a removed one stays removed.
    """
    from sqlalchemy import select

    from storage.models import Document

    wanted = sorted(set(ext_ids))
    known: dict[str, int] = {}
    barred: set[str] = set()
    with db.session() as s:
        for start in range(0, len(wanted), 5000):  # below every backend's limit on bound parameters
            for ext, doc_id, doc_split, removed in s.execute(
                    select(Document.external_id, Document.id, Document.split, Document.removed).where(
                        Document.project_id == project_id, Document.external_id.in_(wanted[start:start + 5000]))):
                if doc_split == TEST_SPLIT or removed:
                    barred.add(ext)
                else:
                    known[ext] = doc_id
    missing = set(wanted) - set(known) - barred
    records = corpus_records(spec, missing) if missing else {}
    with db.session() as s:
        added = [Document(project_id=project_id, external_id=r.external_id, title=r.title, abstract=r.abstract,
                          keywords=r.keywords, split=split, extra={"corpus": spec.path}) for r in records.values()]
        s.add_all(added)
        s.flush()
        known.update({d.external_id: d.id for d in added})
    return known
