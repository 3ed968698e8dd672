"""Roles are enforced in core, whatever the page shows: an annotator's admin actions are refused and change nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.accounts.auth import create_user
from core.accounts.projects import add_member, create_project, delete_project
from core.data.concepts import read_taxonomy
from core.data.corpus import ColumnMapping, read_csv
from core.data.imports import import_corpus, import_taxonomy
from core.data.reports import ImportReport
from core.errors import PermissionDenied
from core.jobs import enqueue
from core.model.versions import activate
from core.newlabels.campaigns import create_campaign, set_status
from core.taxonomy.update import add_label, apply_update, retire_label
from storage.models import Campaign, Event, Job, Label, Project, User
from tests.fakes import CORPUS_CSV, TAXONOMY_CSV, write


def test_every_admin_action_is_refused_to_an_annotator(world, tmp_path):
    db, pid, labels, sme = world["db"], world["pid"], world["labels"], world["users"][0]
    cid = create_campaign(db, pid, "c", [labels["onc"]], world["admin"])
    with db.session() as s:
        before = {t.__name__: s.scalar(select(func.count()).select_from(t)) for t in (Project, User, Label, Campaign, Job)}
        events = s.scalar(select(func.count()).select_from(Event))
    fresh = create_project(db, "empty")
    actions = {
        "create a project": lambda: create_project(db, "mine", user_id=sme),
        "delete a project": lambda: delete_project(db, pid, sme),
        "add a member": lambda: add_member(db, pid, "sme1", sme),
        "create a user": lambda: create_user(db, "eve", "long enough", "admin", sme),
        "activate a version": lambda: activate(db, pid, world["version"], sme),
        "start a campaign": lambda: create_campaign(db, pid, "d", [labels["card"]], sme),
        "stop a campaign": lambda: set_status(db, cid, "stopped", sme),
        "add a label": lambda: add_label(db, pid, "New", user_id=sme),
        "retire a label": lambda: retire_label(db, pid, labels["mi"], "remove", sme),
        "apply a taxonomy update": lambda: apply_update(db, pid, read_taxonomy(write(tmp_path / "t.csv", TAXONOMY_CSV)),
                                                        "v2", sme),
        "queue a training job": lambda: enqueue(db, "train_model", pid, {}, user_id=sme),
        "import a taxonomy": lambda: import_taxonomy(db, fresh, read_taxonomy(write(tmp_path / "t2.csv", TAXONOMY_CSV)),
                                                     "v1", sme),
        "import documents": lambda: import_corpus(db, pid, read_csv(write(tmp_path / "c.csv", CORPUS_CSV.replace(
            "1,Heart", "11,Heart").replace("2,Tumour", "12,Tumour").replace("3,Cardio", "13,Cardio")),
            ColumnMapping(id="doc_id", labels="tags", split="split"), ImportReport()), ImportReport(), user_id=sme),
    }
    for what, action in actions.items():
        try:
            action()
        except PermissionDenied as exc:
            assert "Only an admin" in str(exc)
        else:
            pytest.fail(f"an annotator could {what}")
    with db.session() as s:
        after = {t.__name__: s.scalar(select(func.count()).select_from(t)) for t in (Project, User, Label, Campaign, Job)}
        assert s.scalar(select(func.count()).select_from(Event)) == events + 1  # only the admin's project_created
        assert s.get(Campaign, cid).status == "active"
    assert after == {**before, "Project": before["Project"] + 1}


def test_a_deleted_or_unknown_user_has_no_rights(world):
    with pytest.raises(PermissionDenied):
        create_project(world["db"], "x", user_id=99999)
