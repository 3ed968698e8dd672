"""Property-based tests of the importers: any file gives a result or a clear error, never a traceback or a half import."""

from __future__ import annotations

import itertools
import json

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from core.accounts.projects import create_project
from core.data.concepts import read_taxonomy
from core.data.corpus import ColumnMapping, read_annif_tsv, read_csv, read_jsonl
from core.data.imports import import_corpus, import_taxonomy
from core.data.reports import ImportReport
from core.errors import XmtcError
from storage.models import Document, DocumentLabel, Label
from tests.fakes import TAXONOMY_CSV, write

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
# Pieces that trip parsers: separators, quotes, list syntax, escapes, non-ASCII, control characters.
PIECES = [*"ab ,;|\"'[](){}\\\t<>&é中\x00\x7f", "\n", "\r\n", "Oncology", "med", "card", "__import__('os')", "1"]
CELL = st.lists(st.sampled_from(PIECES), max_size=6).map("".join)
counter = itertools.count()


def csv_text(header: list[str]) -> st.SearchStrategy[str]:
    rows = st.lists(st.lists(CELL, min_size=0, max_size=len(header) + 2), max_size=6)
    return rows.map(lambda rs: "\n".join([",".join(header), *(",".join(r) for r in rs)]) + "\n")


TAXONOMY_FILES = st.one_of(
    st.tuples(st.just("t.csv"), csv_text(["id", "label", "parents", "alt_labels", "description"]).map(str.encode)),
    st.tuples(st.just("t.tsv"), csv_text(["mesh_id", "mesh_name", "mesh_tree_number"]).map(
        lambda t: t.replace(",", "\t").encode())),
    st.tuples(st.sampled_from(["t.ttl", "t.json", "t.xml", "t.csv"]), st.binary(max_size=200)),
)
CORPUS_FILES = st.one_of(
    st.tuples(st.just("c.csv"), csv_text(["doc_id", "title", "abstract", "tags", "split"]).map(str.encode)),
    st.tuples(st.just("c.jsonl"), st.lists(st.one_of(
        st.fixed_dictionaries({"doc_id": CELL, "title": CELL, "tags": st.lists(CELL, max_size=3)}).map(
            json.dumps), CELL), max_size=5).map(lambda ls: "\n".join(ls).encode())),
    st.tuples(st.just("c.tsv"), st.lists(CELL, max_size=5).map(lambda ls: "\n".join(ls).encode())),
    st.tuples(st.sampled_from(["c.csv", "c.jsonl"]), st.binary(max_size=200)),
)


def count(db, model, project_id) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(model.project_id == project_id)) or 0


@FUZZ
@given(file=TAXONOMY_FILES)
def test_any_taxonomy_file_imports_whole_or_not_at_all(db, tmp_path, file):
    name, data = file
    pid = create_project(db, f"p{next(counter)}")
    path = write(tmp_path / f"{next(counter)}-{name}", data)
    try:
        taxonomy = read_taxonomy(path)
        report = import_taxonomy(db, pid, taxonomy, "v1")
    except XmtcError as exc:
        event(f"refused: {type(exc).__name__}")
        assert str(exc)  # a message for the user
        assert count(db, Label, pid) == 0  # nothing half-imported
        return
    event("imported")
    assert count(db, Label, pid) == len(taxonomy) == report.imported


@FUZZ
@given(file=CORPUS_FILES, on_error=st.sampled_from(["abort", "skip"]))
def test_any_corpus_file_imports_whole_or_not_at_all(db, tmp_path, file, on_error):
    name, data = file
    pid = create_project(db, f"p{next(counter)}")
    import_taxonomy(db, pid, read_taxonomy(write(tmp_path / "tax.csv", TAXONOMY_CSV)), "v1")
    path = write(tmp_path / f"{next(counter)}-{name}", data)
    report = ImportReport()
    mapping = ColumnMapping(id="doc_id", labels="tags", split="split")
    if name.endswith(".jsonl"):
        records = read_jsonl(path, ColumnMapping(id="doc_id", labels="tags"), report)
    elif name.endswith(".tsv"):
        records = read_annif_tsv(path, report)
    else:
        records = read_csv(path, mapping, report)
    try:
        import_corpus(db, pid, records, report, on_error=on_error)
    except XmtcError as exc:
        event(f"refused: {type(exc).__name__}")
        assert str(exc)
        assert count(db, Document, pid) == 0
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(DocumentLabel).join(Document)
                            .where(Document.project_id == pid)) == 0
        return
    event("imported" if report.imported else "imported nothing")
    assert count(db, Document, pid) == report.imported
    if on_error == "abort":
        assert report.skipped_count == 0  # a strict import never leaves a row out silently
