"""The new-label jobs end to end on a tiny project: GPL adapts an encoder, the pool job stores pools."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from core.accounts.projects import create_project
from core.config import Settings
from core.data.concepts import read_taxonomy
from core.data.corpus import ColumnMapping, read_csv
from core.data.imports import import_corpus, import_taxonomy
from core.data.reports import ImportReport
from core.errors import XmtcError
from core.jobs import enqueue, get_job
from core.model.ranker import BiCrossRanker
from core.model.training import TrainConfig
from core.model.versions import activate, active_version, list_versions, read_manifest
from core.newlabels.jobs import load_pools
from core.worker import WorkerProcess
from storage.models import Document, Job, Label, ModelVersion, PoolEntry
from tests.fakes import TAXONOMY_CSV, write

CORPUS = """doc_id,title,abstract,tags,split
1,Heart attack outcomes,Acute myocardial infarction patients followed for a year.,Myocardial Infarction|Cardiology,train
2,Tumour growth,Breast tumours grew slowly in the cohort.,Breast Neoplasms,train
3,Cardio-oncology,Heart damage after breast cancer therapy.,Cardiology|Breast Neoplasms,train
4,Coronary care,Infarct size after thrombolysis.,Myocardial Infarction,train
5,Radiotherapy,Radiation for breast cancer.,Breast Neoplasms,train
6,Heart failure clinic,Cardiology outpatients.,Cardiology,test
"""


def run(db, kind, pid, params):
    return work(db, enqueue(db, kind, pid, params))


def work(db, job_id):
    """Run the oldest queued job (``job_id`` is expected to be it) and return it."""
    worker = WorkerProcess(db, Settings.from_env())
    worker.register()
    worker.run_one()
    return get_job(db, job_id)


@pytest.fixture
def project(db, tmp_path):
    pid = create_project(db, "p")
    import_taxonomy(db, pid, read_taxonomy(write(tmp_path / "t.csv", TAXONOMY_CSV)), "v1")
    report = ImportReport()
    import_corpus(db, pid, read_csv(write(tmp_path / "c.csv", CORPUS),
                                    ColumnMapping(id="doc_id", labels="tags", split="split"), report), report)
    with db.session() as s:
        labels = {lab.pref_label: lab.id for lab in s.scalars(select(Label).where(Label.project_id == pid))}
    return pid, labels


def test_gpl_needs_a_trained_cross_encoder(db, project):
    pid, _ = project
    job = run(db, "adapt_encoder", pid, {})
    assert job.status == "failed" and "needs a cross-encoder" in job.error


@pytest.mark.slow  # trains a real model for several seconds
def test_gpl_adapts_a_separate_encoder_and_the_pool_job_uses_it(db, project, data_dir):
    pid, labels = project
    cfg = TrainConfig(batch_size=3, max_seq_length=48, cross_max_length=48, cross_positives_per_doc=1)
    assert run(db, "train_model", pid, {"config": cfg.as_dict(), "eval_docs": 1}).status == "done"
    served = active_version(db, pid)
    job = run(db, "adapt_encoder", pid, {"config": {"batch_size": 2, "max_seq_length": 48}})
    assert job.status == "done", job.error
    assert job.result["documents"] == 5 and job.result["steps"] >= 1  # the test document is left out
    gpl = next(v for v in list_versions(db, pid) if v.kind == "gpl")
    assert active_version(db, pid).id == served.id  # an adapted encoder never serves
    with pytest.raises(XmtcError, match="not a label ranker"):
        activate(db, pid, gpl.id)

    oncology = labels["Oncology"]
    job = run(db, "build_pools", pid, {"label_ids": [oncology], "pool_size": 3})
    assert job.status == "done", job.error
    assert job.result["encoder"] == f"v{gpl.id}" and job.result["pool_size"] == 3
    with db.session() as s:
        rows = s.scalars(select(PoolEntry).where(PoolEntry.label_id == oncology).order_by(PoolEntry.rank)).all()
        assert [r.rank for r in rows] == [0, 1, 2] and {r.encoder_version_id for r in rows} == {gpl.id}
        assert rows[0].score >= rows[1].score >= rows[2].score
        test_doc = s.scalar(select(Document.id).where(Document.split == "test"))
        assert test_doc not in {r.document_id for r in rows}
    folder = data_dir / "embeddings" / f"project-{pid}"
    cached = list(folder.glob(f"v{gpl.id}-*.npy"))  # the corpus by the adapted encoder
    assert len(cached) == 1 and len(list(folder.glob("served-*.npy"))) == 1  # the 3 pooled ones by the served model

    # Rebuilt bigger than the corpus: replaced, capped at the 5 poolable documents, embeddings reused.
    assert run(db, "build_pools", pid, {"label_ids": [oncology], "pool_size": 50}).status == "done"
    pool = load_pools(db, pid)[oncology]
    assert len(pool) == 5 and len(set(pool)) == 5
    assert list(folder.glob(f"v{gpl.id}-*.npy")) == cached and len(list(folder.glob("served-*.npy"))) == 2
    with db.session() as s:  # a removed document leaves the pool
        s.execute(update(Document).where(Document.id == pool[0]).values(removed=True))
    assert pool[0] not in load_pools(db, pid, [oncology])[oncology]


def test_the_pool_job_refuses_unknown_labels_and_an_empty_choice(db, project):
    pid, _ = project
    job = run(db, "build_pools", pid, {"label_ids": [99999]})
    assert job.status == "failed" and "not in this project's taxonomy" in job.error
    job = run(db, "build_pools", pid, {"label_ids": []})
    assert job.status == "failed" and "at least one new label" in job.error


@pytest.mark.slow  # trains a real model for several seconds
def test_a_campaign_serves_its_labels_then_learns_the_answers_and_refills_the_queue(db, project, monkeypatch):
    from core.accounts.auth import create_user
    from core.newlabels.campaigns import CampaignConfig, answer, campaign_progress, claim_next, create_campaign
    from storage.models import Annotation, Campaign, QueueItem

    pid, labels = project
    cfg = TrainConfig(batch_size=3, max_seq_length=48, cross_max_length=48, cross_positives_per_doc=1)
    assert run(db, "train_model", pid, {"config": cfg.as_dict(), "eval_docs": 1}).status == "done"
    oncology = labels["Oncology"]
    pools = run(db, "build_pools", pid, {"label_ids": [oncology], "pool_size": 5})
    # The pool job also embeds the pooled documents with the served model, once: iterations never embed them again.
    assert pools.status == "done" and pools.result["served_vectors"] == pools.result["documents"] == 5
    with db.session() as s:
        pooled = {d.title for d in s.scalars(select(Document).join(PoolEntry, PoolEntry.document_id == Document.id))}
    embedded: list[str] = []
    original = BiCrossRanker.embed_documents
    monkeypatch.setattr(BiCrossRanker, "embed_documents",
                        lambda self, texts, **kw: embedded.extend(texts) or original(self, texts, **kw))
    sme = create_user(db, "sme", "long enough", "annotator").id
    cid = create_campaign(db, pid, "oncology", [oncology], None,
                          CampaignConfig(questions_per_fill=3, train_after_positives=2,
                                         al={"train_batch": 2, "consolidate_replay": 1.0}))
    first = work(db, pending_job(db))  # queued by the campaign's creation
    assert first.status == "done", first.error
    assert first.result["iteration"] == 1 and first.result["queued"] == 3 and first.result["learned"] == 0
    served = active_version(db, pid)
    assert served.id == first.result["model_version_id"] and served.config["campaign_id"] == cid

    gold = {2, 3, 5}  # the documents whose abstracts are about cancer (by external id)
    with db.session() as s:
        external = {d.id: int(d.external_id) for d in s.scalars(select(Document))}
    queued = []
    while (q := claim_next(db, cid, sme)) is not None:
        queued.append(answer(db, q.item_id, sme, "yes" if external[q.document_id] in gold else "no"))
    assert any(queued), "two yes answers should have queued a training iteration"
    second = work(db, pending_job(db))
    assert second.status == "done", second.error
    assert second.result["iteration"] == 2 and second.result["learned"] == 3
    assert embedded and not [t for t in embedded if any(t.startswith(title) for title in pooled)]
    assert second.result["train"]["confirmed"] >= 2 and "answered_R@10" in second.result["metrics"]
    # The saved version serves the label's prototype (moved towards its confirmed documents), not its name.
    with db.session() as s:
        paths = [s.get(ModelVersion, r.result["model_version_id"]).path for r in (first, second)]
    rows = [BiCrossRanker.load(Path(p), read_manifest(Path(p)), "cpu") for p in paths]
    before, after = (r.vectors[r.table.row(oncology)] for r in rows)
    assert not np.allclose(before, after, atol=1e-4)
    # old_R@10 is measured before the iteration learns, with the version it started from: recompute it from that
    # version on the test documents' old labels
    from core.data.catalog import documents
    from core.model.metrics import evaluate

    test = [d for d in documents(db, pid, "test") if set(d.gold) - {oncology}]
    ranked = rows[0].rank([d.text for d in test], k=10, rerank=False)
    expected = evaluate([[p.label_id for p in r] for r in ranked], [set(d.gold) - {oncology} for d in test], ("R@10",))
    assert test and second.result["metrics"]["old_R@10"] == pytest.approx(round(expected["R@10"], 4))
    with db.session() as s:
        assert {a.trained_in_iteration for a in s.scalars(select(Annotation))} == {2}
        assert s.get(Campaign, cid).model_version_id == second.result["model_version_id"]
        waiting = s.scalars(select(QueueItem).where(QueueItem.status == "open")).all()
    assert waiting and all(w.model_version_id == second.result["model_version_id"] for w in waiting)
    assert campaign_progress(db, cid).totals["asked"] == 3

    # Stopping the campaign queues its consolidation (configured): the bi-encoder learns the answers, a version.
    from core.newlabels.campaigns import set_status

    set_status(db, cid, "stopped", None)
    with db.session() as s:
        job_id = s.scalar(select(Job.id).where(Job.kind == "al_consolidate", Job.status == "queued"))
    done = work(db, job_id)
    assert done.status == "done", done.error
    assert done.result["train"]["positives"] >= 2 and done.result["iteration"] == 3
    with db.session() as s:
        version = s.get(ModelVersion, done.result["model_version_id"])
        assert version.config["consolidated"] and s.get(Campaign, cid).model_version_id == version.id
    after = BiCrossRanker.load(Path(version.path), read_manifest(Path(version.path)), "cpu")
    assert not np.allclose(after.vectors[after.table.row(labels["Cardiology"])],
                           rows[1].vectors[rows[1].table.row(labels["Cardiology"])], atol=1e-5)


def pending_job(db):
    from storage.models import Job

    with db.session() as s:
        return s.scalar(select(Job.id).where(Job.status == "queued", Job.kind == "al_iteration"))
