"""The demo project: PubMed abstracts with MeSH labels (canonical split) and the MeSH 2015 hierarchy."""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.config import Settings
from core.corpus import ColumnMapping, DocumentRecord, read_csv
from core.errors import XmtcError
from core.imports import import_corpus, import_taxonomy
from core.jobs import enqueue
from core.projects import create_project, delete_project
from core.reports import ImportReport
from core.taxonomy import Concept, Taxonomy, read_mesh_tree, validate
from storage.db import Database

DEMO_NAME = "PubMed/MeSH demo"
CORPUS = Path("pubmed-mesh/pubmed_mesh.csv.gz")
NEW_LABELS = Path("pubmed-mesh/new_labels.txt")
MESH_TREE = Path("mesh-2015/tree-numbers.tsv.gz")
TEST_SOURCE = "test-data-med.csv"
SOURCES = {
    CORPUS: "github.com/jktjia/PubMed-Multilabel-Classifiction (data/*-data-{small,med}.csv)",
    MESH_TREE: "github.com/dhimmel/mesh (data/tree-numbers.tsv)",
}
MESH_CATEGORIES = {
    "A": "Anatomy", "B": "Organisms", "C": "Diseases", "D": "Chemicals and Drugs",
    "E": "Analytical, Diagnostic and Therapeutic Techniques, and Equipment", "F": "Psychiatry and Psychology",
    "G": "Phenomena and Processes", "H": "Disciplines and Occupations",
    "I": "Anthropology, Education, Sociology, and Social Phenomena", "J": "Technology, Industry, and Agriculture",
    "K": "Humanities", "L": "Information Science", "M": "Named Groups", "N": "Health Care",
    "V": "Publication Characteristics", "Z": "Geographicals",
}
CORPUS_MAPPING = ColumnMapping(id="pmid", title="Title", abstract="abstractText", labels="meshMajor", split="src",
                               extra=["meshid"])


def check_data_dir(data_dir: Path | None) -> Path:
    """Return the demo data folder or raise a message saying where the files come from."""
    if data_dir is None or not all((data_dir / f).is_file() for f in (CORPUS, MESH_TREE)):
        wanted = "; ".join(f"{f} (from {src})" for f, src in SOURCES.items())
        raise XmtcError(
            f"Demo data not found in {data_dir or '(no folder configured)'}. Set XMTC_DEMO_DATA to a folder holding "
            f"{wanted}."
        )
    return data_dir


def canonical_split(src: str | None) -> str:
    """The canonical split: rows from ``test-data-med.csv`` are TEST, all others TRAIN."""
    return "test" if src == TEST_SOURCE else "train"


def read_demo_corpus(data_dir: Path, report: ImportReport) -> Iterator[DocumentRecord]:
    """The PubMed/MeSH documents with the canonical split applied."""
    for rec in read_csv(data_dir / CORPUS, CORPUS_MAPPING, report):
        rec.split = canonical_split(rec.split)
        yield rec


def demo_taxonomy(data_dir: Path) -> Taxonomy:
    """The corpus's labels placed in the MeSH 2015 hierarchy.

    Labels are matched to MeSH descriptors by name; a label MeSH 2015 lacks (a newer heading)
    keeps the corpus's own tree numbers, whose parents are looked up in MeSH 2015. The result
    is cut to the corpus's labels, each linked to its nearest ancestors among them.
    """
    mesh = read_mesh_tree(data_dir / MESH_TREE)
    by_name = {c.pref_label: c.id for c in mesh.concepts.values()}
    owner = {t: c.id for c in mesh.concepts.values() for t in c.extra["tree_numbers"]}
    corpus_trees: dict[str, set[str]] = {}
    for rec in read_csv(data_dir / CORPUS, CORPUS_MAPPING, ImportReport()):
        trees = ast.literal_eval(rec.extra.get("meshid") or "[]")
        for i, name in enumerate(rec.labels):
            # meshid is not always aligned with meshMajor (shorter in some rows): use it only where present.
            corpus_trees.setdefault(name, set()).update(trees[i] if i < len(trees) else ())
    concepts = dict(mesh.concepts)
    keep = []
    for name, numbers in corpus_trees.items():
        cid = by_name.get(name)
        if cid is None:
            cid = f"corpus:{name}"
            parents = set()
            for t in numbers:
                while "." in t:
                    t = t.rsplit(".", 1)[0]
                    if t in owner:
                        parents.add(owner[t])
                        break
            concepts[cid] = Concept(cid, name, parents=sorted(parents),
                                    extra={"tree_numbers": sorted(numbers), "not_in_mesh_2015": True})
        keep.append(cid)
    full = Taxonomy(concepts, mesh.report)
    cut = full.restrict(keep)
    for c in cut.concepts.values():
        letters = sorted({t[0] for t in c.extra.get("tree_numbers", [])})
        c.extra["branches"] = [MESH_CATEGORIES.get(x, x) for x in letters]
    validate(cut)
    cut.report = ImportReport(source=f"{MESH_TREE.name} + corpus label names", rows_read=len(corpus_trees),
                              imported=len(cut))
    return cut


@dataclass
class DemoResult:
    project_id: int
    taxonomy: ImportReport
    corpus: ImportReport
    job_id: int | None


def build_demo(db: Database, data_dir: Path | None, name: str = DEMO_NAME, user_id: int | None = None,
               index_job: bool = True) -> DemoResult:
    """Create the demo project, import its taxonomy and corpus, and queue the label-index job.

    Raises:
        XmtcError: data missing, or a project with this name exists.
    """
    data_dir = check_data_dir(data_dir)
    taxonomy = demo_taxonomy(data_dir)
    project_id = create_project(db, name, "PubMed abstracts indexed with MeSH (canonical split: "
                                "1,600 train / 1,000 test) and the MeSH 2015 hierarchy of their labels.", user_id)
    try:
        tax_report = import_taxonomy(db, project_id, taxonomy, "MeSH 2015 (corpus labels)", user_id)
        report = ImportReport()
        corpus_report = import_corpus(db, project_id, read_demo_corpus(data_dir, report), report, user_id=user_id)
    except BaseException:
        delete_project(db, project_id)  # a half-built demo is worse than none
        raise
    job_id = enqueue(db, "build_label_index", project_id, user_id=user_id, max_attempts=2) if index_job else None
    return DemoResult(project_id, tax_report, corpus_report, job_id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the PubMed/MeSH demo project.")
    parser.add_argument("--data", type=Path, default=None, help="folder with pubmed-mesh/ and mesh-2015/")
    parser.add_argument("--name", default=DEMO_NAME)
    parser.add_argument("--no-index", action="store_true", help="do not queue the label-index job")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    db = Database(settings.db_url)
    db.create_all()
    try:
        result = build_demo(db, args.data or settings.demo_data_dir, args.name, index_job=not args.no_index)
    except XmtcError as exc:
        raise SystemExit(f"error: {exc}") from exc
    print(f"project {result.project_id}: taxonomy {result.taxonomy.summary()}; corpus {result.corpus.summary()}")
    if result.job_id:
        print(f"queued job {result.job_id} (label index); the app's worker runs it, or: python -m core.worker --once")


if __name__ == "__main__":
    main()
