"""Catalog read models: a label's paths through the poly-hierarchy, its children and usage."""

from __future__ import annotations

from core.data.catalog import label_detail, label_places


def test_a_label_with_two_parents_has_both_root_paths_and_its_children(world):
    db, pid, labels = world["db"], world["pid"], world["labels"]
    breast = label_detail(db, pid, labels["bc"])
    assert breast.paths == [["Medicine", "Cardiology", "Breast Neoplasms"], ["Medicine", "Oncology", "Breast Neoplasms"]]
    assert breast.children == []
    assert breast.documents == 2
    cardio = label_detail(db, pid, labels["card"])
    assert cardio.paths == [["Medicine", "Cardiology"]]
    assert cardio.children == ["Breast Neoplasms", "Myocardial Infarction"]
    assert label_detail(db, pid, 10_000) is None


def test_places_of_several_labels_at_once(world):
    places = label_places(world["db"], world["pid"], [world["labels"]["mi"], world["labels"]["med"]])
    assert places[world["labels"]["mi"]] == ("Myocardial Infarction", ["Medicine > Cardiology > Myocardial Infarction"])
    assert places[world["labels"]["med"]] == ("Medicine", ["Medicine"])
