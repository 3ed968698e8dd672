"""The demo project: PubMed abstracts with MeSH labels (canonical split) and the MeSH 2015 hierarchy."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from core.accounts.projects import create_project, delete_project
from core.config import Settings
from core.data.concepts import Concept, Taxonomy, read_mesh_tree, validate
from core.data.corpus import ColumnMapping, DocumentRecord, read_csv
from core.data.imports import import_corpus, import_taxonomy
from core.data.reports import ImportReport
from core.errors import XmtcError
from core.jobs import enqueue
from storage.db import Database

DEMO_NAME = "PubMed/MeSH demo"
CORPUS = Path("pubmed-mesh/pubmed_mesh.csv.gz")
NEW_LABELS = Path("pubmed-mesh/new_labels.txt")
MESH_TREE = Path("mesh-2015/tree-numbers.tsv.gz")
TEST_SOURCE = "test-data-med.csv"
_PUBMED = "https://raw.githubusercontent.com/jktjia/PubMed-Multilabel-Classifiction/1f1d0c81046082988a9b3867c2298e13f1403f96/data/"
_MESH = "https://raw.githubusercontent.com/dhimmel/mesh/9e16dfdca6c6d32cf8d1dcb4149c86be58a1a029/data/"
# The public files the demo is made of, at pinned commits, with the sha256 of each file as served. The corpus files
# are listed in the order the canonical combined file concatenates them (test, dev, train).
REMOTE_FILES = {
    "test-data-med.csv": (_PUBMED, "3ff474e1b6184a69f85b5e155b623f9c0e892685571ad89429a3efd4d153e62a"),
    "dev-data-med.csv": (_PUBMED, "155b1858c2f5dbcfe3bc4c26fcaba72604c9ef8b0f2d9c2cb60cdd4080c5b5c8"),
    "train-data-small.csv": (_PUBMED, "4b74705e967324f20a7178a2c1a26c52a3025c6650e75cbec8196c7e08224237"),
    "tree-numbers.tsv": (_MESH, "b54bbacaf2a4bc95b04040a7a89fca06c62c1bfe577957bdf90edcc90e5e6c4d"),
}
CORPUS_FILES = ("test-data-med.csv", "dev-data-med.csv", "train-data-small.csv")
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
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class DemoFiles:
    """Where the demo's files are: the corpus as (file, source name) parts, and MeSH's tree numbers.

    A part's source name is None when the file carries its own ``src`` column (the combined file of
    ``../shared/data``); otherwise the file is one of the public ``CORPUS_FILES`` and its name is its source.
    """

    folder: Path
    corpus: tuple[tuple[Path, str | None], ...]
    tree: Path


def _either(folder: Path, name: str | Path) -> Path | None:
    """``folder/name`` or its gzipped copy, whichever exists."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_demo_files(folder: Path) -> DemoFiles | None:
    """The demo's files in ``folder``: the shared layout (``pubmed-mesh/``, ``mesh-2015/``) or the public files
    side by side (as downloaded, optionally gzipped). None when they are not all there."""
    if (folder / CORPUS).is_file() and (folder / MESH_TREE).is_file():
        return DemoFiles(folder, ((folder / CORPUS, None),), folder / MESH_TREE)
    parts = [_either(folder, name) for name in CORPUS_FILES]
    tree = _either(folder, "tree-numbers.tsv")
    if tree is None or None in parts:
        return None
    return DemoFiles(folder, tuple((p, n) for p, n in zip(parts, CORPUS_FILES, strict=True)), tree)


def _wanted() -> str:
    return ", ".join(f"{name} ({base}{name})" for name, (base, _) in REMOTE_FILES.items())


def demo_files_in(data_dir: Path | None) -> DemoFiles:
    """The demo's files in a configured folder, or a message saying where the files come from."""
    files = find_demo_files(data_dir) if data_dir is not None else None
    if files is None:
        raise XmtcError(
            f"Demo data not found in {data_dir or '(no folder configured)'}. Set XMTC_DEMO_DATA to a folder holding "
            f"{CORPUS} and {MESH_TREE}, or the public files {_wanted()}."
        )
    return files


class _DownloadBar:
    """A progress object for pooch's downloader that reports bytes fetched as job progress."""

    def __init__(self, name: str, progress: Progress) -> None:
        self.name, self.progress, self.total, self.done = name, progress, 0, 0

    def update(self, n: int) -> None:
        self.done += n
        if self.total:
            self.progress(min(1.0, self.done / self.total), f"downloading {self.name}: {self.done / 1e6:.1f} of "
                                                            f"{self.total / 1e6:.1f} MB")

    def reset(self) -> None:
        self.done = 0

    def close(self) -> None:
        return None


def fetch_demo_files(cache: Path, mirror: str = "", progress: Progress | None = None) -> DemoFiles:
    """Download the demo's public files into ``cache`` (kept there; a file already fetched is only re-checked),
    each verified against its sha256, with pooch. ``mirror``: a base URL serving the same files by name.

    Raises:
        XmtcError: a download failed or a file's checksum did not match; the message names the URL and the folder
            to put the files in by hand.
    """
    import pooch
    import requests

    cache.mkdir(parents=True, exist_ok=True)
    base = mirror.rstrip("/") + "/" if mirror else ""
    store = pooch.create(path=cache, base_url=base or _PUBMED, retry_if_failed=1,
                         registry={name: f"sha256:{sha}" for name, (_, sha) in REMOTE_FILES.items()},
                         urls={} if base else {name: url + name for name, (url, _) in REMOTE_FILES.items()})
    for i, name in enumerate(REMOTE_FILES):
        url = store.get_url(name)
        report = (lambda f, m, i=i: progress((i + f) / len(REMOTE_FILES), m)) if progress else None
        downloader = pooch.HTTPDownloader(progressbar=_DownloadBar(name, report) if report else False, timeout=60)
        try:
            store.fetch(name, downloader=downloader)
        except ValueError as exc:  # pooch's checksum mismatch (the bad download is deleted)
            raise XmtcError(f"{url} did not match its checksum (sha256 {REMOTE_FILES[name][1]}), so it was not used: "
                            f"{exc}. Download it again, or put the files {', '.join(REMOTE_FILES)} into {cache} (or "
                            "set XMTC_DEMO_DATA to a folder holding them).") from exc
        except (requests.RequestException, OSError) as exc:
            raise XmtcError(f"Could not download {url}: {exc}. Without internet, put the files {_wanted()} into "
                            f"{cache} (or set XMTC_DEMO_DATA to a folder holding them), then build again.") from exc
    files = find_demo_files(cache)
    assert files is not None  # every file was just fetched and verified
    return files


def locate_demo(data_dir: Path | None, cache: Path, mirror: str = "", progress: Progress | None = None) -> DemoFiles:
    """The demo's files: from ``data_dir`` when one is configured (never downloaded over), else fetched into
    ``cache``.

    Raises:
        XmtcError: the configured folder lacks the files (named, with where they come from), or a download failed.
    """
    if data_dir is not None:
        return demo_files_in(data_dir)
    return fetch_demo_files(cache, mirror, progress)


def _files(source: Path | DemoFiles | None) -> DemoFiles:
    return source if isinstance(source, DemoFiles) else demo_files_in(source)


def canonical_split(src: str | None) -> str:
    """The canonical split: rows from ``test-data-med.csv`` are TEST, all others TRAIN."""
    return "test" if src == TEST_SOURCE else "train"


def read_demo_corpus(source: Path | DemoFiles, report: ImportReport) -> Iterator[DocumentRecord]:
    """The PubMed/MeSH documents with the canonical split applied (from a data folder or located files)."""
    for path, src in _files(source).corpus:
        mapping = CORPUS_MAPPING if src is None else replace(CORPUS_MAPPING, split=None)
        for rec in read_csv(path, mapping, report):
            rec.split = canonical_split(rec.split if src is None else src)
            yield rec


def category_id(letter: str) -> str:
    return f"mesh-category:{letter}"


def demo_taxonomy(source: Path | DemoFiles) -> Taxonomy:
    """The corpus's labels placed in the MeSH 2015 hierarchy, under MeSH's own 16 top categories.

    Labels are matched to MeSH descriptors by name; a label MeSH 2015 lacks (a newer heading)
    keeps the corpus's own tree numbers, whose parents are looked up in MeSH 2015. The result
    is cut to the corpus's labels, each linked to its nearest ancestors among them, and MeSH's top
    categories (the tree numbers' letters: Anatomy, Organisms, Diseases...) are the roots. The categories
    are grouping nodes (``extra["grouping"]``): browsed, never predicted.
    """
    files = _files(source)
    mesh = read_mesh_tree(files.tree)
    by_name = {c.pref_label: c.id for c in mesh.concepts.values()}
    owner = {t: c.id for c in mesh.concepts.values() for t in c.extra["tree_numbers"]}
    corpus_trees: dict[str, set[str]] = {}
    for rec in read_demo_corpus(files, ImportReport()):
        trees = ast.literal_eval(rec.extra.get("meshid") or "[]")
        for i, name in enumerate(rec.labels):
            # meshid is not always aligned with meshMajor (shorter in some rows): use it only where present.
            corpus_trees.setdefault(name, set()).update(trees[i] if i < len(trees) else ())
    concepts = dict(mesh.concepts)
    categories = {category_id(k): Concept(category_id(k), f"{name} [{k}]", extra={"grouping": True, "tree_numbers": [k]})
                  for k, name in MESH_CATEGORIES.items()}
    for c in concepts.values():  # a top-level descriptor (a tree number without a dot) sits under its category
        tops = sorted({category_id(t[0]) for t in c.extra.get("tree_numbers", []) if "." not in t and t[:1] in MESH_CATEGORIES})
        c.parents = sorted(set(c.parents) | set(tops))
    concepts.update(categories)
    keep = list(categories)
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
                else:
                    if t[:1] in MESH_CATEGORIES:
                        parents.add(category_id(t[0]))
            concepts[cid] = Concept(cid, name, parents=sorted(parents),
                                    extra={"tree_numbers": sorted(numbers), "not_in_mesh_2015": True})
        keep.append(cid)
    full = Taxonomy(concepts, mesh.report)
    cut = full.restrict(keep)
    for c in cut.concepts.values():
        letters = sorted({t[0] for t in c.extra.get("tree_numbers", [])})
        c.extra["branches"] = [MESH_CATEGORIES.get(x, x) for x in letters]
    validate(cut)
    cut.report = ImportReport(source=f"{files.tree.name} + corpus label names", rows_read=len(corpus_trees),
                              imported=len(cut))
    return cut


@dataclass
class DemoResult:
    project_id: int
    taxonomy: ImportReport
    corpus: ImportReport
    job_id: int | None


FIRST_MODEL_MINUTES = 12.0  # the demo's first trained model: time budget of its training job (see first_model_config)


def first_model_config(minutes: float = FIRST_MODEL_MINUTES) -> dict[str, object]:
    """The newcomer's first trained model: the bi-encoder for as long as the budget allows, the sparse backend, the
    nearest training documents and the learned first stage; no cross-encoder (on the demo it adds .001 R@10 for
    20 CPU minutes, see BENCHMARKS.md). ``bench/first_hour.py`` measures it from pressing Build."""
    return {"train_cross": False, "time_budget_min": minutes}  # a TrainConfig's fields (the job reads them)


def build_demo(db: Database, source: Path | DemoFiles | None, name: str = DEMO_NAME, user_id: int | None = None,
               index_job: bool = True, train_minutes: float = 0.0, settings: Settings | None = None) -> DemoResult:
    """Create the demo project, import its taxonomy and corpus, and queue the label-index job (and, with
    ``train_minutes``, a first training job with that time budget after it).

    Args:
        source: a data folder (checked, see :func:`demo_files_in`) or files found by :func:`locate_demo`.
        settings: carried by the queued jobs (default: this process's).

    Raises:
        XmtcError: data missing, or a project with this name exists.
    """
    files = _files(source)
    taxonomy = demo_taxonomy(files)
    project_id = create_project(db, name, "PubMed abstracts indexed with MeSH (canonical split: "
                                "1,600 train / 1,000 test) and the MeSH 2015 hierarchy of their labels.", user_id)
    try:
        tax_report = import_taxonomy(db, project_id, taxonomy, "MeSH 2015 (corpus labels)", user_id)
        report = ImportReport()
        corpus_report = import_corpus(db, project_id, read_demo_corpus(files, report), report, user_id=user_id)
    except BaseException:
        delete_project(db, project_id)  # a half-built demo is worse than none
        raise
    job_id = None
    if index_job:
        job_id = enqueue(db, "build_label_index", project_id, user_id=user_id, max_attempts=2, settings=settings)
    if train_minutes > 0:
        enqueue(db, "train_model", project_id, {"config": first_model_config(train_minutes)},
                user_id=user_id, settings=settings)
    return DemoResult(project_id, tax_report, corpus_report, job_id)
