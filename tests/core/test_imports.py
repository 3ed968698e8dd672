from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from core.accounts.projects import create_project
from core.data.concepts import read_taxonomy
from core.data.corpus import ColumnMapping, read_annif_tsv, read_csv, read_jsonl
from core.data.imports import import_corpus, import_taxonomy
from core.data.reports import ImportReport
from core.errors import ImportFailed
from storage.models import Document, DocumentLabel, Event, Label, LabelParent
from tests.fakes import CORPUS_CSV, TAXONOMY_CSV, write

MAPPING = ColumnMapping(id="doc_id", title="title", abstract="abstract", labels="tags", split="split")


@pytest.fixture
def project(db, tmp_path):
    pid = create_project(db, "p")
    import_taxonomy(db, pid, read_taxonomy(write(tmp_path / "tax.csv", TAXONOMY_CSV)), "v1")
    return pid


def counts(db):
    with db.session() as s:
        return (s.scalar(select(func.count()).select_from(Document)),
                s.scalar(select(func.count()).select_from(DocumentLabel)))


def test_taxonomy_import_stores_labels_and_parent_links(db, project):
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == 5
        assert s.scalar(select(func.count()).select_from(LabelParent)) == 5
        assert s.scalar(select(Event.kind).where(Event.kind == "taxonomy_imported")) == "taxonomy_imported"


def test_a_second_taxonomy_import_is_refused_as_an_update(db, project, tmp_path):
    with pytest.raises(ImportFailed, match="already has a taxonomy"):
        import_taxonomy(db, project, read_taxonomy(write(tmp_path / "t2.csv", TAXONOMY_CSV)), "v2")


def test_csv_corpus_with_list_columns_is_imported_with_labels_and_split(db, project, tmp_path):
    report = ImportReport()
    import_corpus(db, project, read_csv(write(tmp_path / "c.csv", CORPUS_CSV), MAPPING, report), report)
    assert report.imported == 3 and report.skipped_count == 0
    assert counts(db) == (3, 5)
    with db.session() as s:
        assert s.scalar(select(Document.split).where(Document.external_id == "3")) == "test"


def test_labels_can_be_matched_by_alternative_name(db, project, tmp_path):
    text = "doc_id,title,abstract,tags,split\n9,T,A,Heart Attack,train\n"
    report = ImportReport()
    import_corpus(db, project, read_csv(write(tmp_path / "c.csv", text), MAPPING, report), report)
    with db.session() as s:
        assert s.scalar(select(Label.external_id).join(DocumentLabel)) == "mi"


def test_a_missing_column_names_the_column_and_imports_nothing(db, project, tmp_path):
    report = ImportReport()
    with pytest.raises(ImportFailed, match=r"missing column\(s\) \['tags'\]"):
        import_corpus(db, project, read_csv(write(tmp_path / "c.csv", "doc_id,title,abstract,split\n1,a,b,train\n"),
                                            MAPPING, report), report)
    assert counts(db) == (0, 0)


def test_a_malformed_row_aborts_the_whole_import_by_default(db, project, tmp_path):
    text = CORPUS_CSV + '4,Bad row,"unterminated,extra\n'
    report = ImportReport()
    with pytest.raises(ImportFailed, match="bad row"):
        import_corpus(db, project, read_csv(write(tmp_path / "c.csv", text), MAPPING, report), report)
    assert counts(db) == (0, 0)


def test_with_skip_a_malformed_row_is_left_out_and_reported(db, project, tmp_path):
    text = CORPUS_CSV + "4,Too,many,fields,train,extra\n"
    report = ImportReport()
    import_corpus(db, project, read_csv(write(tmp_path / "c.csv", text), MAPPING, report), report, on_error="skip")
    assert counts(db)[0] == 3
    assert report.skipped == [("line 5", "wrong number of fields (header has 5)")]


def test_an_unknown_label_aborts_and_is_named(db, project, tmp_path):
    text = "doc_id,title,abstract,tags,split\n1,T,A,\"['Cardiology', 'Quantum Gravity']\",train\n"
    report = ImportReport()
    with pytest.raises(ImportFailed, match=r"unknown label.*'Quantum Gravity'"):
        import_corpus(db, project, read_csv(write(tmp_path / "c.csv", text), MAPPING, report), report)
    assert counts(db) == (0, 0)


def test_a_non_utf8_corpus_imports_nothing(db, project, tmp_path):
    rows = "".join(f"{i},T,A,Cardiology,train\n" for i in range(3000))  # the bad byte comes after a flushed chunk
    text = "doc_id,title,abstract,tags,split\n" + rows + "x,Caf\xe9,A,Cardiology,train\n"
    report = ImportReport()
    with pytest.raises(ImportFailed, match="not valid UTF-8"):
        import_corpus(db, project, read_csv(write(tmp_path / "c.csv", text.encode("latin-1")), MAPPING, report), report)
    assert counts(db) == (0, 0)


def test_duplicate_document_ids_abort(db, project, tmp_path):
    text = "doc_id,title,abstract,tags,split\n1,T,A,Cardiology,train\n1,T2,A2,Oncology,train\n"
    report = ImportReport()
    with pytest.raises(ImportFailed, match="duplicate document id"):
        import_corpus(db, project, read_csv(write(tmp_path / "c.csv", text), MAPPING, report), report)
    assert counts(db) == (0, 0)


def test_jsonl_corpus_with_a_bad_line_skipped(db, project, tmp_path):
    lines = [json.dumps({"id": "a", "title": "Heart", "abstract": "x", "labels": ["Cardiology"]}), "{not json",
             json.dumps({"id": "b", "title": "Tumour", "abstract": "y", "labels": "Oncology|Medicine"})]
    report = ImportReport()
    mapping = ColumnMapping()
    import_corpus(db, project, read_jsonl(write(tmp_path / "c.jsonl", "\n".join(lines)), mapping, report), report,
                  on_error="skip")
    assert counts(db) == (2, 3)
    assert report.skipped[0][0] == "line 2" and "invalid JSON" in report.skipped[0][1]


def test_annif_tsv_corpus_reads_uri_subjects(db, project, tmp_path):
    text = "Heart attack after surgery\t<mi> <card>\nBreast cancer screening\t<bc>\n"
    report = ImportReport()
    import_corpus(db, project, read_annif_tsv(write(tmp_path / "c.tsv", text), report), report)
    assert counts(db) == (2, 3)


def test_import_without_taxonomy_is_refused(db, tmp_path):
    pid = create_project(db, "empty")
    report = ImportReport()
    with pytest.raises(ImportFailed, match="import the taxonomy first"):
        import_corpus(db, pid, read_csv(write(tmp_path / "c.csv", CORPUS_CSV), MAPPING, report), report)


def test_a_corpus_without_a_test_split_holds_out_a_seeded_share_and_says_so(db, project, tmp_path):
    rows = "\n".join(f"{i},Title {i},Abstract {i}.,Cardiology" for i in range(1, 21))
    path = write(tmp_path / "c.csv", "doc_id,title,abstract,tags\n" + rows + "\n")

    def held(pid: int, seed: int) -> list[str]:
        report = ImportReport()
        import_corpus(db, pid, read_csv(path, ColumnMapping(id="doc_id", labels="tags"), report), report,
                      holdout=0.2, seed=seed)
        assert report.stats["held_out_test"] == 4 and "4 of its 20 documents (20%, chosen with seed" in report.warnings[-1]
        with db.session() as s:
            splits = dict(s.execute(select(Document.external_id, Document.split).where(Document.project_id == pid)).all())
        assert sorted(set(splits.values())) == ["test", "train"]
        return sorted(k for k, v in splits.items() if v == "test")

    first = held(project, 0)
    again = create_project(db, "again")
    import_taxonomy(db, again, read_taxonomy(write(tmp_path / "tax2.csv", TAXONOMY_CSV)), "v1")
    assert held(again, 0) == first  # seeded: the same documents every time
    # a corpus that has its own test split keeps it: nothing is held out
    other = create_project(db, "own split")
    import_taxonomy(db, other, read_taxonomy(write(tmp_path / "tax3.csv", TAXONOMY_CSV)), "v1")
    report = ImportReport()
    import_corpus(db, other, read_csv(write(tmp_path / "own.csv", CORPUS_CSV),
                                      ColumnMapping(id="doc_id", labels="tags", split="split"), report), report, holdout=0.2)
    assert "held_out_test" not in report.stats
