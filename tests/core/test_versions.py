"""Model versions: atomic bundles, activation and roll-back switch what serves predictions."""

from __future__ import annotations

import pytest

from core.accounts.projects import create_project
from core.data.catalog import documents
from core.data.concepts import LabelRow, read_taxonomy
from core.data.imports import import_taxonomy
from core.errors import NotFound
from core.model.bicross import make_label_table
from core.model.encoders import load_bi_encoder
from core.model.loading import load_ranker
from core.model.predictions import predict_split, predictions_for
from core.model.ranker import BiCrossRanker
from core.model.versions import activate, active_version, register_version, write_bundle
from storage.models import Document
from tests.fakes import TAXONOMY_CSV, write


@pytest.fixture
def project(db, tmp_path):
    pid = create_project(db, "p")
    import_taxonomy(db, pid, read_taxonomy(write(tmp_path / "t.csv", TAXONOMY_CSV)), "v1")
    with db.session() as s:
        s.add(Document(project_id=pid, external_id="d1", title="Acute myocardial infarction", abstract="Heart attack.",
                       split="test"))
    return pid


def _version(db, pid, tmp_path, encoder_path, rename: dict[str, str]) -> int:
    from core.data.catalog import servable_labels

    labels = [LabelRow(lab.id, lab.external_id, rename.get(lab.external_id, lab.pref_label))
              for lab in servable_labels(db, pid)]
    ranker = BiCrossRanker.build(load_bi_encoder(encoder_path, "cpu"), make_label_table(labels, []))
    bundle = write_bundle(tmp_path / "models", pid, "zero_shot", lambda f: ranker.save(f))
    return register_version(db, pid, "zero_shot", bundle, {}, {}, None)


def test_activating_a_version_switches_predictions_and_they_record_it(db, project, tmp_path, encoder_path):
    # v2 calls the oncology label "Heart attack": its top label for the heart document changes.
    v1 = _version(db, project, tmp_path, encoder_path, {})
    v2 = _version(db, project, tmp_path, encoder_path, {"onc": "Heart attack", "mi": "Botany"})
    doc = documents(db, project, "test")[0]
    top = {}
    for vid in (v1, v2, v1):  # v1, then v2, then roll back to v1
        activate(db, project, vid)
        version = active_version(db, project)
        assert version.id == vid
        predict_split(db, project, version, load_ranker(version.path, "cpu"), "test", k=3)
        stored = predictions_for(db, doc.id, vid)
        assert [p.model_version_id for p in stored] == [vid] * 3
        top[vid] = stored[0].label_id
    assert top[v1] != top[v2]


def test_a_half_written_bundle_is_never_left_behind(tmp_path):
    def crash(folder):
        (folder / "partial.bin").write_bytes(b"x")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_bundle(tmp_path, 1, "bicross", crash)
    assert list((tmp_path / "project-1").iterdir()) == []


def test_activating_a_version_of_another_project_is_refused(db, project, tmp_path, encoder_path):
    other = create_project(db, "other")
    vid = _version(db, project, tmp_path, encoder_path, {})
    with pytest.raises(NotFound):
        activate(db, other, vid)


def test_temporary_folders_of_killed_writers_are_swept_later(tmp_path):
    import os
    import time

    from core.model.versions import sweep_stale

    parent = tmp_path / "project-1"
    old, fresh = parent / ".tmp-old", parent / ".tmp-fresh"
    old.mkdir(parents=True)
    fresh.mkdir()
    past = time.time() - 7 * 3600
    os.utime(old, (past, past))
    assert sweep_stale(parent) == [old]
    assert fresh.is_dir() and not old.exists()
