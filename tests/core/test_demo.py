from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.data.catalog import servable_labels
from core.data.demo import MESH_CATEGORIES, REMOTE_FILES, build_demo, fetch_demo_files, locate_demo
from core.errors import XmtcError
from core.jobs import enqueue, get_job, request_cancel
from storage.models import Document, DocumentLabel, Label, LabelParent, Project


def test_demo_project_holds_the_pubmed_mesh_corpus_with_its_canonical_split(db, shared_data):
    result = build_demo(db, shared_data)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Document)) == 2600
        splits = dict(s.execute(select(Document.split, func.count()).group_by(Document.split)).all())
        assert splits == {"train": 1600, "test": 1000}
        assert s.scalar(select(func.count(func.distinct(DocumentLabel.label_id)))) == 8132
        # the corpus's 8,132 labels under MeSH's own 16 top categories, which are browsed but never predicted
        assert s.scalar(select(func.count()).select_from(Label)) == 8132 + 16
        assert s.scalar(select(func.count()).select_from(LabelParent)) > 8000
        mean = s.scalar(select(func.count()).select_from(DocumentLabel)) / 2600
        assert 12.6 < mean < 12.8
        with_parent = set(s.scalars(select(LabelParent.child_id)))
        roots = {lab.pref_label for lab in s.scalars(select(Label)) if lab.id not in with_parent}
    assert len(servable_labels(db, result.project_id)) == 8132
    assert {f"{name} [{k}]" for k, name in MESH_CATEGORIES.items()} <= roots
    assert len(roots) < 40, sorted(roots)[:50]  # was 920: "Adult" and "Adolescent" at the top level
    assert "Adult" not in roots and "Humans" not in roots
    assert result.corpus.skipped_count == 0
    assert get_job(db, result.job_id).kind == "build_label_index"


def test_demo_without_data_says_where_the_files_come_from(db, tmp_path):
    with pytest.raises(XmtcError, match=rf"{tmp_path}.*XMTC_DEMO_DATA.*pubmed_mesh\.csv\.gz.*raw.githubusercontent"):
        build_demo(db, tmp_path)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Project)) == 0


def test_the_demo_files_download_over_http_with_checksums_and_build_the_same_project(db, tmp_path, demo_mirror, shared_data):
    cache = tmp_path / "cache"
    seen: list[float] = []
    files = fetch_demo_files(cache, demo_mirror.url, lambda f, m: seen.append(f))
    assert sorted(demo_mirror.requests) == sorted(REMOTE_FILES)
    assert {p.name for p in cache.iterdir()} == set(REMOTE_FILES) and seen and max(seen) <= 1.0
    # a second build finds the verified files in the cache: nothing is fetched again
    again = locate_demo(None, cache, demo_mirror.url)
    assert again == files and len(demo_mirror.requests) == len(REMOTE_FILES)
    downloaded = build_demo(db, files, "from the public files")
    shared = build_demo(db, shared_data, "from the shared folder", index_job=False)
    with db.session() as s:
        def docs(pid):
            return sorted(s.execute(select(Document.external_id, Document.split).where(Document.project_id == pid)).all())
        assert docs(downloaded.project_id) == docs(shared.project_id) and len(docs(shared.project_id)) == 2600
    assert downloaded.taxonomy.imported == shared.taxonomy.imported


def test_a_corrupted_download_is_refused_with_the_url_and_the_folder(tmp_path, demo_mirror):
    demo_mirror.corrupt.add("dev-data-med.csv")
    cache = tmp_path / "cache"
    with pytest.raises(XmtcError) as caught:
        fetch_demo_files(cache, demo_mirror.url)
    message = str(caught.value)
    assert f"{demo_mirror.url}dev-data-med.csv did not match its checksum" in message and str(cache) in message
    assert not (cache / "dev-data-med.csv").exists()  # the bad file is not kept


def test_a_file_that_does_not_match_its_sha256_is_refused_without_the_shared_folder(tmp_path):
    from tests.conftest import DemoMirror

    # A stand-in for each public file (right names, wrong bytes): every checksum fails, the first one stops it.
    mirror = DemoMirror({name: f"not the real {name}\n".encode() for name in REMOTE_FILES})
    try:
        with pytest.raises(XmtcError, match="did not match its checksum") as caught:
            fetch_demo_files(tmp_path / "cache", mirror.url)
    finally:
        mirror.close()
    [fetched] = set(mirror.requests)  # pooch tries a failed download once more
    assert f"{mirror.url}{fetched} did not match its checksum" in str(caught.value)
    assert REMOTE_FILES[fetched][1] in str(caught.value) and str(tmp_path / "cache") in str(caught.value)
    assert not (tmp_path / "cache" / fetched).exists()  # the bad file is not kept


def test_an_unreachable_source_names_the_urls_and_the_folder_to_fill(tmp_path):
    with pytest.raises(XmtcError, match=r"Could not download http://127\.0\.0\.1:9/test-data-med\.csv.*put the files"):
        fetch_demo_files(tmp_path / "cache", "http://127.0.0.1:9/")


def test_the_demo_job_runs_with_the_folders_it_was_queued_with_and_names_them(db, tmp_path, monkeypatch, demo_mirror):
    from core.config import Settings
    from core.worker import WorkerProcess

    queued_with = Settings.from_env().for_job({"demo_data_dir": None, "demo_mirror": demo_mirror.url})
    job_id = enqueue(db, "build_demo", None, {"train_minutes": 5}, settings=queued_with)
    # the worker's own environment points somewhere else entirely: the job's settings win
    monkeypatch.setenv("XMTC_DEMO_DATA", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("XMTC_DEMO_MIRROR", "http://127.0.0.1:9/")
    worker = WorkerProcess(db, Settings.from_env())
    worker.register()
    worker.run_one()
    job = get_job(db, job_id)
    assert job.status == "done", job.error
    assert job.result["data_folder"].endswith("downloads/demo")
    with db.session() as s:
        from storage.models import Job
        queued = {j.kind: j.params for j in s.scalars(select(Job).where(Job.id != job_id))}
        queued_ids = list(s.scalars(select(Job.id).where(Job.id != job_id)))
    assert set(queued) == {"build_label_index", "train_model"}
    assert queued["train_model"]["config"]["time_budget_min"] == 5 and not queued["train_model"]["config"]["train_cross"]
    assert queued["build_label_index"]["settings"]["demo_mirror"] == demo_mirror.url

    for other in queued_ids:  # not needed here
        request_cancel(db, other)
    failing = enqueue(db, "build_demo", None, {}, settings=Settings.from_env().for_job(
        {"demo_data_dir": str(tmp_path / "empty")}))
    worker.run_one()
    assert f"Demo data not found in {tmp_path / 'empty'}" in get_job(db, failing).error
