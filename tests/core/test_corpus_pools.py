"""Pools from a corpus outside the database: streamed reading, vector shards, the shard search, the Ray pipeline."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from core.errors import JobCancelled
from core.newlabels.corpus_pools import (
    CorpusSpec,
    EmbeddedCorpus,
    ScaleConfig,
    ShardWriter,
    corpus_blocks,
    corpus_records,
    embed_corpus,
    shard_pools,
)
from core.newlabels.pools import scored_pools

HEART = ["Acute myocardial infarction outcomes in the coronary care unit", "Heart attack survivors and cardiac rehab",
         "Infarct size after thrombolysis", "Cardiology clinic follow-up of heart failure"]
CANCER = ["Breast cancer tumour growth under therapy", "Oncology outcomes of breast neoplasms",
          "Radiotherapy for breast tumours", "Chemotherapy trial in women with breast cancer"]
OTHER = ["Soil erosion on hillside farms", "A compiler for a functional language", "Bird migration over the Alps",
         "Traffic flow in city centres"]


def write_jsonl(path, docs, bad_lines=()):
    lines = [json.dumps({"id": i, "title": t, "abstract": ""}) for i, t in docs]
    for at, line in bad_lines:
        lines.insert(at, line)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def shards_from(vectors: np.ndarray, folder, block_rows: int, shard_rows: int) -> EmbeddedCorpus:
    writer = ShardWriter(folder, shard_rows)
    for start in range(0, len(vectors), block_rows):
        part = vectors[start:start + block_rows]
        writer.add(pa.table({"id": [f"d{i}" for i in range(start, start + len(part))],
                             "file": pa.array([0] * len(part), pa.int32()),
                             "row": pa.array(range(start, start + len(part)), pa.int64()),
                             "vector": pa.FixedSizeListArray.from_arrays(pa.array(part.reshape(-1)), part.shape[1])}))
    writer.flush()
    return EmbeddedCorpus(folder, writer.rows, writer.dim, writer.shards, "local", 0.0, "test", "test")


@pytest.mark.parametrize(("block_rows", "shard_rows"), [(30, 50), (257, 1000), (7, 7)])
def test_the_shard_search_equals_the_single_process_builder_whatever_the_sharding(tmp_path, block_rows, shard_rows):
    rng = np.random.default_rng(0)
    # Multiples of 1/8: every dot product is exact in float32, so ties are real ties whatever the matrix shapes,
    # and the earlier corpus position must win them, as in the single builder.
    vectors = (rng.integers(-2, 3, size=(257, 16)) / 8).astype(np.float32)
    vectors[200:230] = vectors[10]
    labels = {7: vectors[10].copy(), 8: (rng.integers(-2, 3, size=16) / 8).astype(np.float32), 9: -vectors[3]}
    corpus = shards_from(vectors, tmp_path, block_rows, shard_rows)
    sizes = [pq.read_metadata(p).num_rows for p in corpus.shard_paths()]
    assert sum(sizes) == corpus.rows == 257 and all(n >= shard_rows for n in sizes[:-1])
    for size in (40, 300):
        got = shard_pools(corpus, labels, size)
        want = scored_pools(list(range(257)), vectors, labels, size)
        for lab in labels:
            assert [d for d, _ in got[lab]] == [f"d{i}" for i, _ in want[lab]]
            assert np.allclose([s for _, s in got[lab]], [s for _, s in want[lab]], atol=1e-6)
    assert [d for d, _ in shard_pools(corpus, {7: labels[7]}, 21)[7]] == ["d10", *[f"d{i}" for i in range(200, 220)]]


def test_a_folder_of_jsonl_gz_and_parquet_streams_in_blocks_with_bad_rows_left_out(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl.gz", [("a1", "first"), ("a2", "second"), ("a3", "third")],
                bad_lines=[(1, "{not json"), (3, json.dumps({"id": "empty", "title": ""}))])
    pq.write_table(pa.table({"id": ["b1", "b2", "b3"], "title": ["x", "y", "z"], "abstract": ["1", "2", "3"],
                             "year": [2020, 2021, 2022]}), folder / "b.parquet")
    (folder / "notes.txt").write_text("not a corpus file")
    spec = CorpusSpec(str(folder))
    blocks = list(corpus_blocks(spec, rows=2))
    assert all(b.num_rows <= 2 for b in blocks)
    table = pa.concat_tables(blocks)
    assert table.column("id").to_pylist() == ["a1", "a2", "a3", "b1", "b2", "b3"]
    assert table.column("file").to_pylist() == [0, 0, 0, 1, 1, 1]
    assert table.column("row").to_pylist() == [1, 3, 5, 1, 2, 3]  # the bad rows count as rows
    assert table.column("text").to_pylist()[3] == "x. 1"
    assert {k: r.title for k, r in corpus_records(spec, {"a2", "b3", "missing"}).items()} == {"a2": "second", "b3": "z"}
    before = spec.fingerprint()
    write_jsonl(folder / "c.jsonl", [("c1", "new")])
    assert CorpusSpec(str(folder)).fingerprint() != before


def test_the_local_engine_writes_the_encoders_vectors_reuses_them_and_leaves_nothing_when_cancelled(tmp_path, encoder_path):
    from core.model.encoders import encode, load_bi_encoder

    docs = [(f"h{i}", t) for i, t in enumerate(HEART + CANCER + OTHER)]
    spec = CorpusSpec(str(write_jsonl(tmp_path / "c.jsonl.gz", docs)))
    cfg = ScaleConfig(engine="local", batch_rows=4, shard_rows=5, device="cpu")
    seen: list[int] = []
    corpus = embed_corpus(spec, encoder_path, "pretrained", tmp_path / "store", cfg, seen.append)
    assert (corpus.rows, len(corpus.shards), seen) == (12, 2, [4, 8, 12])  # a shard closes once it holds 5 or more
    stored = pa.concat_tables([pq.read_table(p) for p in corpus.shard_paths()])
    vectors = stored.column("vector").combine_chunks().flatten().to_numpy().reshape(12, corpus.dim)
    assert np.allclose(vectors, encode(load_bi_encoder(encoder_path, "cpu"), [t for _, t in docs]), atol=1e-5)
    again: list[int] = []
    assert embed_corpus(spec, encoder_path, "pretrained", tmp_path / "store", cfg, again.append).folder == corpus.folder
    assert again == []  # reused, nothing embedded

    def cancel() -> None:
        raise JobCancelled("cancelled")

    with pytest.raises(JobCancelled):
        embed_corpus(spec, encoder_path, "other-encoder", tmp_path / "store", cfg, check_cancel=cancel)
    assert sorted(p.name for p in corpus.folder.parent.iterdir()) == ["pretrained"]


def test_pools_from_a_corpus_copy_only_the_pool_documents_into_the_project(db, tmp_path, data_dir, monkeypatch):
    from core.accounts.projects import create_project
    from core.config import Settings
    from core.data.concepts import read_taxonomy
    from core.data.imports import import_taxonomy
    from core.jobs import enqueue, get_job
    from core.newlabels.jobs import BUILD_POOLS, load_pools
    from core.worker import WorkerProcess
    from storage.models import Document, Label, PoolEntry
    from tests.fakes import TAXONOMY_CSV, write

    monkeypatch.setenv("XMTC_POOL_ENGINE", "local")
    pid = create_project(db, "p")
    import_taxonomy(db, pid, read_taxonomy(write(tmp_path / "t.csv", TAXONOMY_CSV)), "v1")
    with db.session() as s:
        labels = dict(s.execute(select(Label.external_id, Label.id)).all())
        # The project's own test document and a removed one share ids with heart documents of the corpus.
        s.add_all([Document(project_id=pid, external_id="x4", title=HEART[0], split="test"),
                   Document(project_id=pid, external_id="x5", title=HEART[1], split="train", removed=True)])
    docs = [(f"x{i}", t) for i, t in enumerate(OTHER + HEART + CANCER)]
    (data_dir / "corpora").mkdir(parents=True)
    corpus = write_jsonl(data_dir / "corpora" / "corpus.jsonl.gz", docs)
    worker = WorkerProcess(db, Settings.from_env())
    worker.register()
    for _ in range(2):  # a second build reuses the shards and the copied documents
        job = enqueue(db, BUILD_POOLS, pid, {"label_ids": [labels["mi"], labels["bc"]], "pool_size": 3,
                                             "corpus": str(corpus)})
        worker.run_one()
        done = get_job(db, job)
        assert done.status == "done", done.error
        assert done.result["corpus_documents"] == 12 and done.result["engine"] == "local"
    pools = load_pools(db, pid)
    with db.session() as s:
        stored = {d.id: (d.external_id, d.split) for d in s.scalars(select(Document).where(Document.split == "corpus"))}
        in_pools = {d.external_id for d in s.scalars(select(Document).join(PoolEntry, PoolEntry.document_id == Document.id))}
    assert set(stored) == {d for pool in pools.values() for d in pool}  # only pool documents were copied, once
    assert len(stored) <= 6 and not {"x4", "x5"} & in_pools  # the test and the removed document never enter a pool
    heart_ids, cancer_ids = {f"x{i}" for i in range(6, 8)}, {f"x{i}" for i in range(8, 12)}
    assert stored[pools[labels["mi"]][0]][0] in heart_ids
    assert stored[pools[labels["bc"]][0]][0] in cancer_ids


def test_a_corpus_outside_the_corpus_folders_or_not_a_corpus_file_is_never_opened(db, tmp_path, data_dir, monkeypatch):
    from core.accounts.projects import create_project
    from core.config import Settings
    from core.data.concepts import read_taxonomy
    from core.data.corpus import checked_corpus
    from core.data.imports import import_taxonomy
    from core.errors import ImportFailed
    from core.jobs import enqueue, get_job
    from core.newlabels.jobs import BUILD_POOLS
    from core.worker import WorkerProcess
    from tests.fakes import TAXONOMY_CSV, write

    secret = 'OPENAI_API_KEY = "sk-do-not-show-me"\n'
    roots = [data_dir / "corpora", tmp_path / "more"]
    outside = write(tmp_path / ".streamlit" / "secrets.toml", secret)
    inside_but_toml = write(roots[0] / "secrets.toml", secret)
    inside_csv = write(roots[0] / "keys.csv", secret)  # a corpus suffix, but not a corpus: its header is a secret
    roots[1].mkdir()
    good = write_jsonl(roots[1] / "docs.jsonl.gz", [("a", HEART[0])])
    (roots[0] / "linked").mkdir()
    (roots[0] / "linked" / "leak.csv").symlink_to(write(tmp_path / "elsewhere.csv", secret))
    for path, words in [(outside, "is outside the corpus folders"), (tmp_path / "../etc", "is outside the corpus folders"),
                        (inside_but_toml, "is not a corpus file"), (roots[0] / "linked", r"links to 1 file\(s\) outside"),
                        ("missing.jsonl", "does not exist")]:
        with pytest.raises(ImportFailed, match=words) as caught:
            checked_corpus(path, roots)
        assert "sk-do-not" not in str(caught.value)
    assert checked_corpus(good, roots) == good.resolve()
    assert checked_corpus("keys.csv", roots) == inside_csv.resolve()  # a relative path is taken in the first root
    # The job checks again (whoever queued it), and its error names the file and the problem, never its content.
    monkeypatch.setenv("XMTC_POOL_ENGINE", "local")
    pid = create_project(db, "p")
    import_taxonomy(db, pid, read_taxonomy(write(tmp_path / "t.csv", TAXONOMY_CSV)), "v1")
    worker = WorkerProcess(db, Settings.from_env())
    worker.register()
    for path in (outside, inside_csv):
        job = enqueue(db, BUILD_POOLS, pid, {"label_ids": [1], "corpus": str(path)})
        worker.run_one()
        failed = get_job(db, job)
        assert failed.status == "failed" and path.name in failed.error and "sk-do-not" not in failed.error


def ray_or_skip():
    from core.newlabels.corpus_pools import ray_available

    if not ray_available():
        if os.environ.get("XMTC_REQUIRE_RAY"):
            pytest.fail("Ray is required (XMTC_REQUIRE_RAY) but not installed: pip install -e .[scale]")
        pytest.skip("Ray is not installed (pip install -e .[scale])")


@pytest.mark.slow
def test_the_ray_pipeline_gives_the_local_engines_vectors_and_pools(tmp_path, encoder_path):
    ray_or_skip()
    import ray

    folder = tmp_path / "corpus"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl.gz", [(f"a{i}", t) for i, t in enumerate(HEART + OTHER)])
    write_jsonl(folder / "b.jsonl.gz", [(f"b{i}", t) for i, t in enumerate(CANCER)])
    spec = CorpusSpec(str(folder))
    made = {}
    try:
        for engine in ("local", "ray"):
            cfg = ScaleConfig(engine=engine, block_rows=3, batch_rows=3, shard_rows=4, device="cpu")
            made[engine] = embed_corpus(spec, encoder_path, engine, tmp_path / "store", cfg)
    finally:
        ray.shutdown()
    local, via_ray = made["local"], made["ray"]
    assert via_ray.rows == local.rows == 12 and via_ray.engine == "ray"

    def vectors(c):
        t = pa.concat_tables([pq.read_table(p) for p in c.shard_paths()])
        order = np.lexsort((t.column("row").to_numpy(), t.column("file").to_numpy()))
        return np.asarray(t.column("id").to_pylist())[order], \
            t.column("vector").combine_chunks().flatten().to_numpy().reshape(t.num_rows, c.dim)[order]

    (ids_l, vec_l), (ids_r, vec_r) = vectors(local), vectors(via_ray)
    assert list(ids_l) == list(ids_r) and np.allclose(vec_l, vec_r, atol=1e-5)
    queries = {1: vec_l[0], 2: vec_l[5]}
    assert [[d for d, _ in p] for p in shard_pools(local, queries, 5).values()] == \
        [[d for d, _ in p] for p in shard_pools(via_ray, queries, 5).values()]
    assert not list((tmp_path / "store").rglob("*.tmp"))


@pytest.mark.slow
def test_a_bad_file_in_a_ray_read_task_fails_with_what_the_file_said(tmp_path, encoder_path):
    ray_or_skip()
    import ray

    from core.errors import ImportFailed

    folder = tmp_path / "corpus"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl.gz", [("a1", HEART[0])])
    (folder / "b.parquet").write_bytes(b"PAR1 this is not parquet")
    try:
        with pytest.raises(ImportFailed, match=r"b\.parquet: not a readable Parquet file"):
            embed_corpus(CorpusSpec(str(folder)), encoder_path, "e", tmp_path / "store", ScaleConfig(device="cpu"))
    finally:
        ray.shutdown()
    assert not [p for p in (tmp_path / "store").rglob("*") if p.name.endswith(".tmp")]  # nothing half-written left
