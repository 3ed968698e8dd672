"""Bad input the catalogue in the README lists that no other test covers: each gives its message, nothing changes."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from core.config import Settings
from core.data.concepts import read_taxonomy
from core.errors import ImportFailed, XmtcError
from core.jobs import enqueue, get_job
from core.newlabels.campaigns import (
    AnswerConflict,
    CampaignConfig,
    add_questions,
    answer,
    claim_next,
    create_campaign,
    set_status,
    undo_last,
)
from core.taxonomy.update import SERVE_CHANGES
from core.worker import WorkerProcess
from storage.models import Annotation, Project
from tests.fakes import empty_version, write


def campaign(world) -> int:
    cid = create_campaign(world["db"], world["pid"], "c", [world["labels"]["onc"]], None,
                          CampaignConfig(train_after_positives=100))
    add_questions(world["db"], cid, [(d, world["labels"]["onc"]) for d in world["docs"]], world["version"], 1)
    return cid


def test_a_taxonomy_file_without_concepts_is_refused(tmp_path):
    with pytest.raises(ImportFailed, match="no concepts found; nothing was imported"):
        read_taxonomy(write(tmp_path / "t.csv", "id,label,parents\n"))


def test_an_answer_the_model_has_learned_cannot_be_undone(world):
    db, sme = world["db"], world["users"][0]
    cid = campaign(world)
    answer(db, claim_next(db, cid, sme).item_id, sme, "yes")
    with db.session() as s:
        s.execute(update(Annotation).values(trained_in_iteration=2))
    with pytest.raises(XmtcError, match="already been learned by the model"):
        undo_last(db, cid, sme)
    with db.session() as s:
        assert s.scalar(select(Annotation.answer)) == "yes"


def test_a_campaign_needs_an_active_model(world):
    with world["db"].session() as s:
        s.execute(update(Project).values(active_model_version_id=None))
    with pytest.raises(XmtcError, match="no active model: train one"):
        create_campaign(world["db"], world["pid"], "c", [world["labels"]["onc"]], None)


def test_an_answer_to_a_withdrawn_question_is_refused_and_not_stored(world):
    db, sme = world["db"], world["users"][0]
    cid = campaign(world)
    q = claim_next(db, cid, sme)
    set_status(db, cid, "stopped", None)
    with pytest.raises(AnswerConflict, match="withdrawn"):
        answer(db, q.item_id, sme, "yes")
    with db.session() as s:
        assert s.scalars(select(Annotation)).all() == []


def test_the_baseline_cannot_serve_new_labels(world, data_dir):
    db, pid = world["db"], world["pid"]
    empty_version(db, pid, data_dir / "models", "baseline", activate=True)
    job = enqueue(db, SERVE_CHANGES, pid, {"add": [world["labels"]["onc"]], "remove": []})
    WorkerProcess(db, Settings.from_env()).run_one()
    view = get_job(db, job)
    assert view.status == "failed" and "cannot serve new labels without retraining" in view.error
