"""Taxonomy page: browse the poly-hierarchy, search, update to a new version (diff, apply), edit labels, export."""

from __future__ import annotations

from sqlalchemy import select

from core.config import Settings
from core.worker import WorkerProcess
from storage.models import Job, Label
from tests.core.test_taxonomy_update import NEXT_CSV
from tests.fakes import job_params
from tests.pages.conftest import shown, signed_in, texts


def button(at, label: str):
    return next(b for b in at.button if shown(b.label) == label)


def test_browse_from_the_top_through_both_parents_of_a_label(seeded):
    at = signed_in("pages/4_Taxonomy.py", seeded["annotator"])
    assert not at.exception
    assert "Top-level labels (1)" in texts(at)
    button(at, "Medicine (2)").click().run()
    assert "Narrower labels (2)" in texts(at)
    button(at, "Oncology (1)").click().run()
    button(at, "Breast Neoplasms").click().run()
    shown = texts(at)
    assert "Medicine > Cardiology > Breast Neoplasms" in shown and "Medicine > Oncology > Breast Neoplasms" in shown
    assert "Documents carrying it 2" in shown and "in use" in shown
    button(at, "Broader: Cardiology").click().run()  # the other parent of the poly-hierarchy
    assert "Medicine > Cardiology" in texts(at) and "Narrower labels (2)" in texts(at)
    assert "An admin imports new taxonomy versions." in texts(at)  # an annotator edits nothing
    assert not [f for f in at.get("form")]


def test_an_admin_adds_a_label_and_deprecates_another_and_the_model_is_asked_to_serve_it(seeded):
    db = seeded["db"]
    at = signed_in("pages/4_Taxonomy.py", seeded["admin"])
    at.text_input(key="taxonomy_search").set_value("heart attack").run()  # an alternative name
    assert "Myocardial Infarction" in texts(at)
    form_inputs = [t for t in at.text_input if t.label == "Preferred name"]
    form_inputs[0].set_value("Cardio-Oncology")
    next(t for t in at.text_area if t.label.startswith("Parents")).set_value("card\nOncology")
    next(b for b in at.button if b.label == "Add the label").click().run()
    assert "Added 'Cardio-Oncology'" in texts(at) and "Labels 6" in texts(at)  # the header counts it at once
    with db.session() as s:
        new = s.scalar(select(Label).where(Label.pref_label == "Cardio-Oncology"))
        assert {p.pref_label for p in new.parents} == {"Cardiology", "Oncology"}
        job = s.scalar(select(Job).where(Job.kind == "serve_label_changes"))
        assert job_params(job) == {"add": [new.id], "remove": []}
    assert "Cardio-Oncology" in texts(at)  # the new label is opened
    next(t for t in at.text_input if t.label.startswith("Replaced by")).set_value("nope")
    next(b for b in at.button if b.label == "Retire the label").click().run()
    assert "Unknown label(s): nope" in texts(at)
    next(t for t in at.text_input if t.label.startswith("Replaced by")).set_value("Cardiology")
    next(b for b in at.button if b.label == "Retire the label").click().run()
    with db.session() as s:
        assert s.get(Label, new.id).deprecated and s.get(Label, new.id).replaced_by == "card"
    next(t for t in at.text_input if t.label == "Preferred name").set_value("Cardiology")
    next(b for b in at.button if b.label == "Add the label").click().run()
    assert "has a label named 'Cardiology' already" in texts(at)


def test_an_admin_uploads_a_new_version_sees_the_diff_and_applies_it(seeded, data_dir):
    db = seeded["db"]
    at = signed_in("pages/4_Taxonomy.py", seeded["admin"])
    at.file_uploader(key="tax_update_file").upload("next.csv", NEXT_CSV.encode(), "text/csv")
    next(t for t in at.text_input if t.key == "tax_update_name").set_value("v2")
    next(b for b in at.button if b.label == "Compare with the current taxonomy").click().run()
    assert not at.exception
    WorkerProcess(db, Settings.from_env()).run_one()
    at.run()
    shown = texts(at)
    assert "Differences of 'v2' (5 concepts) to the current taxonomy" in shown
    assert "added 1" in shown and "removed 1" in shown and "renamed 1" in shown and "moved 1" in shown
    assert "deprecated 1" in shown
    assert {e.label for e in at.expander} >= {"added (1)", "removed (1)", "renamed (1)", "moved (1)", "deprecated (1)"}
    at.button(key="tax_apply").click().run()
    WorkerProcess(db, Settings.from_env()).run_one()
    at.run()
    with db.session() as s:
        apply = s.scalar(select(Job).where(Job.kind == "apply_taxonomy_update"))
        assert apply.status == "done", apply.error
        assert s.scalar(select(Label).where(Label.external_id == "mi")).removed_in_version_id is not None
    assert "1 added label(s) are served now" in texts(at)
    assert at.button(key="tax_apply").disabled  # applied once
    at.button(key="tax_pools").click().run()
    with db.session() as s:
        pools = s.scalar(select(Job).where(Job.kind == "build_pools"))
        co = s.scalar(select(Label.id).where(Label.external_id == "co"))
    assert pools.params["label_ids"] == [co]


def test_a_bad_update_is_reported_and_exports_are_offered(seeded):
    db = seeded["db"]
    at = signed_in("pages/4_Taxonomy.py", seeded["admin"])
    at.file_uploader(key="tax_update_file").upload("bad.csv", NEXT_CSV.replace("card|onc", "nope").encode(), "text/csv")
    next(t for t in at.text_input if t.key == "tax_update_name").set_value("v2")
    next(b for b in at.button if b.label == "Compare with the current taxonomy").click().run()
    WorkerProcess(db, Settings.from_env()).run_one()
    at.run()
    assert any("missing parent 'nope'" in str(e.value) for e in at.error)
    assert not [b for b in at.button if b.key == "tax_apply"]
    labels = {b.label for b in at.get("download_button")}
    assert labels == {"Taxonomy as SKOS (Turtle)", "Taxonomy as CSV", "CSV", "JSON Lines", "Annif TSV corpus (gold)"}


def test_every_level_pages_through_its_labels(seeded, tmp_path):
    from core.accounts.projects import create_project
    from core.data.concepts import read_taxonomy
    from core.data.imports import import_taxonomy
    from tests.fakes import write

    db = seeded["db"]
    pid = create_project(db, "AAA many roots")  # first by name: the page opens it
    rows = "\n".join(f"r{i:02d},Root {i:02d},,," for i in range(70))
    import_taxonomy(db, pid, read_taxonomy(write(tmp_path / "many.csv", "id,label,parents,alt_labels,description\n"
                                                 + rows + "\n")), "v1")
    at = signed_in("pages/4_Taxonomy.py", seeded["admin"])
    assert "**Top-level labels (70)**, the first 60 by name" in texts(at)
    assert "Root 59" in [shown(b.label) for b in at.button] and "Root 60" not in [shown(b.label) for b in at.button]
    button(at, "Show 10 more of 10").click().run()
    assert "**Top-level labels (70)**" in texts(at)
    assert "Root 69" in [shown(b.label) for b in at.button] and "the first 60 by name" not in texts(at)
