"""Taxonomy updates: the diff (crafted cases and real PhySH releases), applying it, label edits, exports."""

from __future__ import annotations

import gzip
import json

import pytest
from sqlalchemy import func, select

from core.accounts.projects import create_project
from core.data.catalog import search_labels, servable_labels
from core.data.concepts import read_skos, read_taxonomy, read_taxonomy_csv
from core.data.corpus import read_annif_tsv
from core.data.imports import import_taxonomy
from core.data.reports import ImportReport
from core.errors import TaxonomyError, XmtcError
from core.taxonomy.diff import diff_taxonomies
from core.taxonomy.exports import annif_tsv, document_labels, taxonomy_csv, taxonomy_turtle
from core.taxonomy.update import add_label, apply_update, current_concepts, preview_update, retire_label
from storage.models import Event, Label, LabelParent, Project, TaxonomyVersion
from tests.fakes import write

# The fake taxonomy's next release: "mi" removed, "onc" deprecated for the new "co", "card" renamed,
# "bc" moved from two parents to one, "co" added under two parents.
NEXT_CSV = """id,label,parents,alt_labels,description,deprecated,replaced_by
med,Medicine,,,,,
card,Cardiovascular Medicine,med,Heart medicine,Diseases of the heart,,
onc,Oncology,med,Cancer medicine,,true,co
bc,Breast Neoplasms,onc,Breast Cancer,A poly-hierarchy example with two parents,,
co,Cardio-Oncology,card|onc,,Heart disease in cancer patients,,
"""


def next_version(tmp_path, text: str = NEXT_CSV):
    return read_taxonomy(write(tmp_path / "next.csv", text), "csv")


def test_the_diff_finds_each_kind_of_change(world, tmp_path):
    diff = diff_taxonomies(current_concepts(world["db"], world["pid"]), next_version(tmp_path).concepts)
    assert diff.counts() == {"added": 1, "removed": 1, "deprecated": 1, "renamed": 1, "moved": 1, "edited": 0}
    assert diff.added == [{"id": "co", "label": "Cardio-Oncology", "parents": ["Cardiovascular Medicine", "Oncology"]}]
    assert diff.removed == [{"id": "mi", "label": "Myocardial Infarction"}]
    assert diff.deprecated == [{"id": "onc", "label": "Oncology", "replaced_by": "co", "replacement": "Cardio-Oncology"}]
    assert diff.renamed == [{"id": "card", "old": "Cardiology", "new": "Cardiovascular Medicine"}]
    assert diff.moved == [{"id": "bc", "label": "Breast Neoplasms", "old_parents": ["Cardiology", "Oncology"],
                           "new_parents": ["Oncology"]}]
    same = diff_taxonomies(current_concepts(world["db"], world["pid"]), current_concepts(world["db"], world["pid"]))
    assert same.empty


def test_applying_changes_the_taxonomy_in_place_and_keeps_history(world, tmp_path):
    db, pid, labels = world["db"], world["pid"], world["labels"]
    diff, change = apply_update(db, pid, next_version(tmp_path), "v2", user_id=world["admin"])
    assert diff.counts()["added"] == 1
    with db.session() as s:
        rows = {lab.external_id: lab for lab in s.scalars(select(Label).where(Label.project_id == pid))}
        v2 = s.scalar(select(TaxonomyVersion).where(TaxonomyVersion.name == "v2"))
        assert s.get(Project, pid).active_taxonomy_version_id == v2.id
        assert rows["mi"].removed_in_version_id == v2.id  # kept in history, not deleted
        assert rows["onc"].deprecated and rows["onc"].replaced_by == "co"
        assert rows["card"].pref_label == "Cardiovascular Medicine" and rows["card"].id == labels["card"]
        assert rows["co"].added_in_version_id == v2.id
        parents = {(c, p) for c, p in s.execute(select(LabelParent.child_id, LabelParent.parent_id))}
        assert (labels["bc"], labels["card"]) not in parents and (labels["bc"], labels["onc"]) in parents
        assert {(rows["co"].id, labels["card"]), (rows["co"].id, labels["onc"])} <= parents
        event = s.scalar(select(Event).where(Event.kind == "taxonomy_updated"))
        assert event.payload["added"] == 1 and event.user_id == world["admin"]
    assert sorted(change["add"]) == sorted([rows["co"].id, labels["card"]])  # new and renamed: embedded
    assert sorted(change["remove"]) == sorted([labels["mi"], labels["onc"]]) and change["new"] == [rows["co"].id]
    assert {lab.external_id for lab in servable_labels(db, pid)} == {"med", "card", "bc", "co"}
    again = preview_update(db, pid, next_version(tmp_path))[0]
    assert again.empty  # applied: nothing left to change


def test_an_update_with_a_missing_parent_or_a_cycle_is_refused_whole(world, tmp_path):
    db, pid = world["db"], world["pid"]
    before = current_concepts(db, pid)
    with pytest.raises(TaxonomyError, match=r"dangling parent.*'co' -> missing parent 'nope'"):
        next_version(tmp_path, NEXT_CSV.replace("card|onc", "card|nope"))
    cyclic = NEXT_CSV.replace("med,Medicine,,,,,", "med,Medicine,bc,,,,")  # a move that closes a loop
    with pytest.raises(TaxonomyError, match="cycle in the hierarchy"):
        next_version(tmp_path, cyclic)
    with pytest.raises(TaxonomyError, match="Name the new taxonomy version"):
        apply_update(db, pid, next_version(tmp_path), "  ")
    with pytest.raises(TaxonomyError, match="exists already"):
        apply_update(db, pid, next_version(tmp_path), "v1")
    assert current_concepts(db, pid) == before


def test_a_removed_label_with_open_questions_blocks_the_update(world, tmp_path):
    from core.newlabels.campaigns import CampaignConfig, add_questions, create_campaign

    db, pid, labels = world["db"], world["pid"], world["labels"]
    cid = create_campaign(db, pid, "onc", [labels["onc"]], None, CampaignConfig())
    add_questions(db, cid, [(world["docs"][0], labels["onc"])], world["version"], 1)
    _, blockers = preview_update(db, pid, next_version(tmp_path))
    assert blockers == ["'Oncology' has 1 open question(s) in the campaign 'onc'"]
    with pytest.raises(TaxonomyError, match="Stop those campaigns"):
        apply_update(db, pid, next_version(tmp_path), "v2")
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(TaxonomyVersion)) == 1
        assert not s.get(Label, labels["onc"]).deprecated
    with pytest.raises(XmtcError, match="open question"):
        retire_label(db, pid, labels["onc"], "remove")


def test_adding_and_retiring_labels_by_hand(world):
    db, pid, labels = world["db"], world["pid"], world["labels"]
    admin = world["admin"]
    new = add_label(db, pid, " Cardio-Oncology ", ["Onco-cardiology", ""], "Heart disease in cancer",
                    [labels["card"], labels["onc"]], admin)
    with db.session() as s:
        label = s.get(Label, new)
        assert label.alt_labels == ["Onco-cardiology"] and label.external_id.startswith("local:cardio-oncology-")
        assert {p.pref_label for p in label.parents} == {"Cardiology", "Oncology"}
    with pytest.raises(XmtcError, match="has a label named 'Cardiology' already"):
        add_label(db, pid, "Cardiology")
    with pytest.raises(XmtcError, match="not in this project's current taxonomy"):
        add_label(db, pid, "Other", parent_ids=[99999])
    with pytest.raises(XmtcError, match="needs a preferred name"):
        add_label(db, pid, "   ")
    retire_label(db, pid, labels["mi"], "deprecate", admin, replaced_by=new)
    retire_label(db, pid, labels["bc"], "remove", admin)
    with pytest.raises(XmtcError, match="already deprecated"):
        retire_label(db, pid, labels["mi"], "deprecate")
    with pytest.raises(XmtcError, match="another label"):
        retire_label(db, pid, labels["card"], "deprecate", replaced_by=labels["card"])
    with db.session() as s:
        mi, bc = s.get(Label, labels["mi"]), s.get(Label, labels["bc"])
        assert mi.deprecated and mi.replaced_by.startswith("local:") and bc.removed_in_version_id is not None
        kinds = [e.kind for e in s.scalars(select(Event).order_by(Event.id))]
    assert kinds[-3:] == ["label_added", "label_deprecated", "label_removed"]
    assert {lab.external_id for lab in servable_labels(db, pid)} == {"med", "card", "onc", label.external_id}


def test_search_ranks_exact_names_then_alternative_names_then_prefixes(world):
    db, pid = world["db"], world["pid"]
    assert next(h[2] for h in search_labels(db, pid, "mi")) == "Myocardial Infarction"  # an exact alternative name
    assert [h[2] for h in search_labels(db, pid, "cardio")] == ["Cardiology"]
    assert [h[2] for h in search_labels(db, pid, "breast cancer")] == ["Breast Neoplasms"]
    assert [h[2] for h in search_labels(db, pid, "O")][:1] == ["Oncology"]  # prefix before substring
    assert search_labels(db, pid, "%") == [] and search_labels(db, pid, "") == []
    assert search_labels(db, pid, "ONC")[0][1] == "onc"


def test_exports_round_trip_through_the_importers(world, tmp_path):
    from core.model.labels import Prediction
    from core.model.predictions import store_predictions

    db, pid, labels = world["db"], world["pid"], world["labels"]
    retire_label(db, pid, labels["onc"], "deprecate", replaced_by=labels["card"])
    current = current_concepts(db, pid)
    back = read_taxonomy_csv(write(tmp_path / "t.csv", taxonomy_csv(db, pid))).concepts
    assert {k: (c.pref_label, sorted(c.parents), sorted(c.alt_labels), c.description, c.deprecated, c.replaced_by)
            for k, c in back.items()} == {k: (c.pref_label, sorted(c.parents), sorted(c.alt_labels), c.description,
                                              c.deprecated, c.replaced_by) for k, c in current.items()}
    ttl = read_skos(write(tmp_path / "t.ttl", taxonomy_turtle(db, pid)), "turtle").concepts
    assert {k: (c.pref_label, sorted(c.parents), c.deprecated) for k, c in ttl.items()} == \
        {k: (c.pref_label, sorted(c.parents), c.deprecated) for k, c in current.items()}
    assert ttl["onc"].replaced_by == "card"
    report = ImportReport()
    docs = list(read_annif_tsv(write(tmp_path / "c.tsv", annif_tsv(db, pid)), report))
    assert [sorted(d.labels) for d in docs] == [["card", "mi"], ["bc"], ["bc", "card"]]
    assert docs[0].abstract.startswith("Heart attack outcomes Patients with acute")
    store_predictions(db, world["version"], [world["docs"][2]], [[Prediction(labels["bc"], 0.9, 0.8)]])
    frame = document_labels(db, pid, world["version"])
    predicted = frame[frame["kind"] == "predicted"]
    assert predicted[["document", "label", "source", "rank"]].values.tolist() == [["3", "Breast Neoplasms", "v1 (bicross)", 1]]
    assert (frame["kind"] == "gold").sum() == 5


def physh_ids(path) -> dict[str, str]:
    """An independent reading of a PhySH release (plain JSON, no rdflib): SKOS concept id -> English name."""
    skos = "http://www.w3.org/2004/02/skos/core#"
    out = {}
    with gzip.open(path) as fh:
        items = json.load(fh)
    for item in items:
        if f"{skos}Concept" in item.get("@type", []):
            out[item["@id"]] = next(v["@value"] for v in item[f"{skos}prefLabel"] if v.get("@language") == "en")
    return out


def test_physh_2_6_to_2_7_diff_matches_an_independent_count_and_applies(db, shared_data):
    old_file, new_file = shared_data / "physh" / "physh-2.6.json.gz", shared_data / "physh" / "physh-2.7.json.gz"
    pid = create_project(db, "physh")
    import_taxonomy(db, pid, read_taxonomy(old_file), "PhySH 2.6")
    new = read_taxonomy(new_file)
    diff, blockers = preview_update(db, pid, new)
    old_ids, new_ids = physh_ids(old_file), physh_ids(new_file)
    assert diff.counts()["added"] == len(set(new_ids) - set(old_ids)) == 40
    assert diff.counts()["removed"] == len(set(old_ids) - set(new_ids)) == 0
    assert diff.counts()["renamed"] == sum(1 for i in set(old_ids) & set(new_ids) if old_ids[i] != new_ids[i]) == 4
    assert blockers == []
    _, change = apply_update(db, pid, new, "PhySH 2.7")
    assert len(change["new"]) == 40
    with db.session() as s:
        assert s.scalar(select(func.count()).where(Label.project_id == pid)) == len(new_ids) == 3847
    assert preview_update(db, pid, new)[0].empty


def test_an_applied_update_is_served_at_once_and_old_predictions_keep_their_version(db, data_dir, tmp_path):
    """The real bundled encoder: the update job embeds the added label and drops the removed ones, no retraining."""
    from core.config import Settings
    from core.data.corpus import ColumnMapping, read_csv
    from core.data.imports import import_corpus
    from core.jobs import enqueue, get_job
    from core.model.loading import load_ranker
    from core.model.predictions import predict_split
    from core.model.versions import active_version
    from core.taxonomy.update import APPLY_UPDATE, PREVIEW_UPDATE, file_digest
    from core.worker import WorkerProcess
    from storage.models import PredictionRecord
    from tests.fakes import CORPUS_CSV, TAXONOMY_CSV

    pid = create_project(db, "p")
    import_taxonomy(db, pid, read_taxonomy(write(tmp_path / "t.csv", TAXONOMY_CSV)), "v1")
    report = ImportReport()
    import_corpus(db, pid, read_csv(write(tmp_path / "c.csv", CORPUS_CSV), ColumnMapping(id="doc_id", labels="tags",
                                                                                          split="split"), report), report)
    worker = WorkerProcess(db, Settings.from_env())
    enqueue(db, "build_label_index", pid)
    worker.run_one()
    before = active_version(db, pid)
    predict_split(db, pid, before, load_ranker(before.path, device="cpu"), split=None, k=5)
    with db.session() as s:
        ids = {lab.external_id: lab.id for lab in s.scalars(select(Label))}
        old_predictions = set(s.execute(select(PredictionRecord.document_id, PredictionRecord.label_id)
                                        .where(PredictionRecord.model_version_id == before.id)).all())
    assert ids["mi"] in {lab for _, lab in old_predictions}

    path = write(tmp_path / "next.csv", NEXT_CSV)
    preview = enqueue(db, PREVIEW_UPDATE, pid, {"path": str(path), "format": "csv", "version_name": "v2"})
    worker.run_one()
    result = get_job(db, preview).result
    assert result["counts"]["added"] == 1 and result["digest"] == file_digest(path)
    path.write_text(NEXT_CSV + "x,X,,,,,\n")  # the file changes after its diff was shown
    stale = enqueue(db, APPLY_UPDATE, pid, {"path": str(path), "format": "csv", "version_name": "v2",
                                            "digest": result["digest"]})
    worker.run_one()
    assert "changed since its differences were shown" in get_job(db, stale).error
    path.write_text(NEXT_CSV)
    job = enqueue(db, APPLY_UPDATE, pid, {"path": str(path), "format": "csv", "version_name": "v2",
                                          "digest": result["digest"]})
    worker.run_one()
    view = get_job(db, job)
    assert view.status == "done", view.error
    (added,) = view.result["added_label_ids"]
    with db.session() as s:
        assert s.get(Label, added).external_id == "co"
    after = active_version(db, pid)
    assert after.id != before.id and after.kind == "zero_shot" and after.config["taxonomy.added"] == 2
    ranker = load_ranker(after.path, device="cpu")
    top = ranker.rank(["Cardio-oncology: heart disease in patients treated for cancer"], k=3)[0]
    ext = [ranker.table.external_ids[ranker.table.row(p.label_id)] for p in top]
    assert ext[0] == "co" and "mi" not in ext and "onc" not in ext  # servable at once; retired ones are gone
    assert ranker.table.text(ids["card"]) == "Cardiovascular Medicine"  # the renamed label was re-embedded
    assert "co" not in load_ranker(before.path, device="cpu").table.external_ids  # the old version is untouched
    predict_split(db, pid, after, ranker, split=None, k=5)
    with db.session() as s:
        kept = set(s.execute(select(PredictionRecord.document_id, PredictionRecord.label_id)
                             .where(PredictionRecord.model_version_id == before.id)).all())
        new = {lab for (lab,) in s.execute(select(PredictionRecord.label_id)
                                           .where(PredictionRecord.model_version_id == after.id))}
    assert kept == old_predictions  # history: the old version's predictions stay as they were
    assert ids["mi"] not in new and ids["onc"] not in new
