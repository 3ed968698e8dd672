from __future__ import annotations

import pytest

from core.data.concepts import Concept, Taxonomy, find_cycle, read_taxonomy
from core.errors import ImportFailed, TaxonomyError
from tests.fakes import TAXONOMY_CSV, write


def test_csv_taxonomy_keeps_poly_hierarchy_alt_labels_and_descriptions(tmp_path):
    tax = read_taxonomy(write(tmp_path / "t.csv", TAXONOMY_CSV))
    assert len(tax) == 5
    assert tax.concepts["bc"].parents == ["onc", "card"]  # file order kept
    assert tax.concepts["mi"].alt_labels == ["Heart Attack", "MI"]
    assert tax.concepts["card"].description == "Diseases of the heart"
    assert tax.multi_parent_count() == 1
    assert tax.report.imported == 5 and tax.report.rows_read == 5


def test_a_cycle_is_reported_with_its_path(tmp_path):
    bad = "id,label,parents\na,A,c\nb,B,a\nc,C,b\n"
    with pytest.raises(TaxonomyError, match=r"cycle in the hierarchy: .*a.*->.*->.*->"):
        read_taxonomy(write(tmp_path / "t.csv", bad))


def test_a_dangling_parent_is_reported(tmp_path):
    with pytest.raises(TaxonomyError, match=r"dangling parent.*'b' -> missing parent 'nope'"):
        read_taxonomy(write(tmp_path / "t.csv", "id,label,parents\na,A,\nb,B,nope\n"))


def test_duplicate_ids_are_reported(tmp_path):
    with pytest.raises(TaxonomyError, match=r"duplicate id 'a'"):
        read_taxonomy(write(tmp_path / "t.csv", "id,label\na,A\na,Again\n"))


def test_a_missing_column_is_reported(tmp_path):
    with pytest.raises(ImportFailed, match=r"missing column\(s\) \['label'\]"):
        read_taxonomy(write(tmp_path / "t.csv", "id,name\na,A\n"))


def test_a_non_utf8_file_is_reported(tmp_path):
    with pytest.raises(ImportFailed, match="not valid UTF-8"):
        read_taxonomy(write(tmp_path / "t.csv", "id,label\na,Caf\xe9\n".encode("latin-1")))


def test_a_malformed_row_is_skipped_with_its_line(tmp_path):
    tax = read_taxonomy(write(tmp_path / "t.csv", "id,label,parents\na,A,\nb,B,a,extra,fields\nc,C,a\n"))
    assert sorted(tax.concepts) == ["a", "c"]
    assert tax.report.skipped_count == 1
    assert tax.report.skipped[0][0] == "line 3"


def test_find_cycle_is_none_for_a_dag():
    concepts = {"a": Concept("a", "A"), "b": Concept("b", "B", parents=["a"]), "c": Concept("c", "C", parents=["a", "b"])}
    assert find_cycle(concepts) is None


def test_restrict_links_kept_labels_to_their_nearest_kept_ancestors():
    concepts = {
        "root": Concept("root", "Root"),
        "mid": Concept("mid", "Mid", parents=["root"]),
        "other": Concept("other", "Other", parents=["root"]),
        "leaf": Concept("leaf", "Leaf", parents=["mid", "other"]),
    }
    cut = Taxonomy(concepts).restrict(["root", "leaf", "other"])
    assert sorted(cut.concepts) == ["leaf", "other", "root"]
    assert cut.concepts["leaf"].parents == ["other", "root"]


def test_physh_2_7_has_3847_concepts_and_230_with_several_parents(shared_data):
    tax = read_taxonomy(shared_data / "physh" / "physh-2.7.json.gz")
    assert len(tax) == 3847
    assert tax.multi_parent_count() == 230
    assert any(c.alt_labels for c in tax.concepts.values())


def test_acm_ccs_has_1928_concepts_159_placed_in_several_places(shared_data):
    tax = read_taxonomy(shared_data / "acm-ccs" / "acm_ccs2012.xml.gz")
    assert len(tax) == 1928
    assert sum(1 for c in tax.concepts.values() if len(c.extra["paths"]) > 1) == 159
    assert tax.concepts["10002944"].pref_label == "General and reference"
    assert tax.multi_parent_count() == 103  # distinct parents; the other 56 repeat under one parent's copies


def test_mesh_2015_tree_numbers_build_a_poly_hierarchy(shared_data):
    tax = read_taxonomy(shared_data / "mesh-2015" / "tree-numbers.tsv.gz")
    assert len(tax) == 27453  # descriptors that have a tree number
    assert tax.report.rows_read == 56341
    assert sum(1 for c in tax.concepts.values() if len(c.extra["tree_numbers"]) > 1) == 14447
    mi = next(c for c in tax.concepts.values() if c.pref_label == "Myocardial Infarction")
    assert {tax.concepts[p].pref_label for p in mi.parents} >= {"Myocardial Ischemia"}


def test_label_text_enrichment():
    from core.data.concepts import label_text

    assert label_text("Myocardial Infarction") == "Myocardial Infarction"
    assert label_text("MI", ["Heart Attack", "MI", "Infarct"], max_alts=1) == "MI (Heart Attack)"
    assert label_text("MI", parent_names=["Myocardial Ischemia", ""]) == "MI [in: Myocardial Ischemia]"
