"""Corpus readers (CSV/TSV with a column mapping, JSONL, Parquet, Annif TSV) that stream records."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from core.data.reports import ImportReport, iter_decoded, open_text, parse_list, source_name
from core.errors import ImportFailed

csv.field_size_limit(50_000_000)


@dataclass
class DocumentRecord:
    """One document as read from a file, before it is stored."""

    external_id: str
    title: str = ""
    abstract: str = ""
    keywords: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    split: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return document_text(self.title, self.abstract, self.keywords)


def document_text(title: str, abstract: str, keywords: list[str] | None = None) -> str:
    """The text a model reads for a document: title, abstract and keywords."""
    parts = [title.strip(), abstract.strip()]
    if keywords:
        parts.append("; ".join(keywords))
    return ". ".join(p for p in parts if p)


@dataclass
class ColumnMapping:
    """Which column (or JSON key) holds each field. Only ``id`` and one of title/abstract are required."""

    id: str = "id"
    title: str | None = "title"
    abstract: str | None = "abstract"
    keywords: str | None = None
    labels: str | None = "labels"
    split: str | None = None
    extra: list[str] = field(default_factory=list)

    def required(self) -> list[str]:
        return [c for c in (self.id, self.title, self.abstract, self.keywords, self.labels, self.split) if c] + self.extra


def _record(values: dict[str, Any], mapping: ColumnMapping) -> DocumentRecord:
    """Build a record from one row/object; raises ValueError with a reason for a bad row."""
    ext = str(values.get(mapping.id) or "").strip()
    if not ext:
        raise ValueError(f"empty id column {mapping.id!r}")
    title = str(values.get(mapping.title) or "") if mapping.title else ""
    abstract = str(values.get(mapping.abstract) or "") if mapping.abstract else ""
    if not title.strip() and not abstract.strip():
        raise ValueError("empty document (no title and no abstract)")
    return DocumentRecord(
        external_id=ext,
        title=title.strip(),
        abstract=abstract.strip(),
        keywords=parse_list(values.get(mapping.keywords)) if mapping.keywords else [],
        labels=parse_list(values.get(mapping.labels)) if mapping.labels else [],
        split=(str(values.get(mapping.split) or "").strip() or None) if mapping.split else None,
        extra={k: values.get(k) for k in mapping.extra},
    )


def read_csv(
    source: str | Path | IO[bytes],
    mapping: ColumnMapping,
    report: ImportReport,
    delimiter: str | None = None,
) -> Iterator[DocumentRecord]:
    """Stream records from a CSV or TSV file; bad rows are skipped into ``report`` with a reason.

    Raises:
        ImportFailed: a mapped column is missing, or the file is not UTF-8.
    """
    name = source_name(source)
    report.source = name
    if delimiter is None:
        stem = name[:-3] if name.endswith(".gz") else name
        delimiter = "\t" if stem.lower().endswith(".tsv") else ","
    with open_text(source) as fh:
        reader = csv.DictReader(iter_decoded(fh, name), delimiter=delimiter)
        fields = reader.fieldnames or []
        missing = [c for c in mapping.required() if c not in fields]
        if missing:
            raise ImportFailed(f"{name}: missing column(s) {missing} (its header has {len(fields)} column(s)). Fix the "
                               "column mapping.")
        for row in reader:
            report.rows_read += 1
            where = f"line {reader.line_num}"
            if None in row or any(v is None for v in row.values()):
                report.skip(where, f"wrong number of fields (header has {len(fields)})")
                continue
            try:
                yield _record(row, mapping)
            except ValueError as exc:
                report.skip(where, str(exc))


def read_jsonl(source: str | Path | IO[bytes], mapping: ColumnMapping, report: ImportReport) -> Iterator[DocumentRecord]:
    """Stream records from JSON Lines (one object per line); bad lines are skipped with a reason."""
    name = source_name(source)
    report.source = name
    with open_text(source) as fh:
        for lineno, line in enumerate(iter_decoded(fh, name), start=1):
            if not line.strip():
                continue
            report.rows_read += 1
            where = f"line {lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                report.skip(where, f"invalid JSON: {exc.msg}")
                continue
            if not isinstance(obj, dict):
                report.skip(where, "not a JSON object")
                continue
            if mapping.id not in obj and mapping.id == "id":
                obj = {**obj, "id": str(lineno)}
            try:
                yield _record(obj, mapping)
            except ValueError as exc:
                report.skip(where, str(exc))


def read_annif_tsv(source: str | Path | IO[bytes], report: ImportReport) -> Iterator[DocumentRecord]:
    """Stream Annif's short-text corpus: ``text<TAB><uri1> <uri2> ...`` (one document per line).

    Subjects are URIs in angle brackets, or bare labels separated by spaces; the document id
    is the line number.
    """
    name = source_name(source)
    report.source = name
    with open_text(source) as fh:
        for lineno, line in enumerate(iter_decoded(fh, name), start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            report.rows_read += 1
            text, sep, subjects = line.partition("\t")
            if not sep or "\t" in subjects:
                report.skip(f"line {lineno}", "expected exactly one tab between text and subjects")
                continue
            if not text.strip():
                report.skip(f"line {lineno}", "empty text")
                continue
            labels = [s.strip("<>") for s in subjects.split() if s.strip("<>")]
            yield DocumentRecord(external_id=str(lineno), abstract=text.strip(), labels=labels)


def read_parquet(source: str | Path, mapping: ColumnMapping, report: ImportReport,
                 batch_rows: int = 4096) -> Iterator[DocumentRecord]:
    """Stream records from a Parquet file, one row group batch at a time; bad rows are skipped with a reason.

    Raises:
        ImportFailed: not a Parquet file, or a mapped column is missing.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = source_name(source)
    report.source = name
    try:
        pf = pq.ParquetFile(str(source))
    except (OSError, pa.ArrowException) as exc:
        raise ImportFailed(f"{name}: not a readable Parquet file ({exc}).") from exc
    fields = pf.schema_arrow.names
    wanted = [c for c in mapping.required() if c != "labels" or c in fields]  # labels are optional in a corpus file
    missing = [c for c in wanted if c not in fields]
    if missing:
        raise ImportFailed(f"{name}: missing column(s) {missing} (it has {len(fields)} column(s)). Fix the column mapping.")
    row = 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=wanted):
        for values in batch.to_pylist():
            row += 1
            report.rows_read += 1
            try:
                yield _record(values, mapping)
            except ValueError as exc:
                report.skip(f"row {row}", str(exc))


CORPUS_FORMATS = ("csv", "tsv", "jsonl", "annif-tsv", "parquet")
CORPUS_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


def guess_format(path: str | Path) -> str:
    """A corpus file's format from its name (``.gz`` looked through); CSV when the name says nothing."""
    name = Path(path).name.lower().removesuffix(".gz")
    return CORPUS_SUFFIXES.get(Path(name).suffix, "csv")


def corpus_files(path: str | Path) -> list[Path]:
    """A corpus given as one file or as a folder of files (``*.jsonl[.gz]``, ``*.parquet``, ``*.csv[.gz]`` ...).

    Raises:
        ImportFailed: nothing there, or a folder without corpus files.
    """
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ImportFailed(f"Corpus {root} does not exist: give a JSONL/Parquet/CSV file or a folder of them.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".") and is_corpus_file(p))
    if not files:
        raise ImportFailed(f"Corpus folder {root} holds no {', '.join(sorted(CORPUS_SUFFIXES))} files (optionally .gz).")
    return files


def is_corpus_file(path: str | Path) -> bool:
    """Whether a file's name has a corpus suffix (``.jsonl``, ``.parquet``, ``.csv`` ...; ``.gz`` looked through)."""
    return Path(Path(path).name.lower().removesuffix(".gz")).suffix in CORPUS_SUFFIXES


def checked_corpus(path: str | Path, roots: Sequence[Path]) -> Path:
    """A pool corpus given by a user (a file or a folder of files), which must lie under one of ``roots`` (links
    followed; a relative path is taken in the first root) and carry a corpus suffix: nothing else on the machine
    is ever opened. Returns its resolved path. Errors name the path and the problem, never what a file holds.

    Raises:
        ImportFailed: outside the roots, not a corpus file, nothing there.
    """
    folders = [Path(r).resolve() for r in roots]
    given = Path(path).expanduser()
    if not given.is_absolute() and folders:
        given = folders[0] / given

    def inside(p: Path) -> bool:
        real = p.resolve()
        return any(real.is_relative_to(r) for r in folders)

    if not inside(given):
        raise ImportFailed(f"Corpus {given} is outside the corpus folders ({', '.join(map(str, folders))}): put it in "
                           "one of them, or ask an admin to add its folder to XMTC_CORPUS_ROOTS.")
    if given.is_file() and not is_corpus_file(given):
        raise ImportFailed(f"Corpus {given} is not a corpus file: give a {', '.join(sorted(CORPUS_SUFFIXES))} file "
                           "(optionally .gz) or a folder of them.")
    files = corpus_files(given.resolve())
    if outside := [f for f in files if not inside(f)]:
        raise ImportFailed(f"Corpus {given} links to {len(outside)} file(s) outside the corpus folders, e.g. "
                           f"{outside[0].name}: copy them in instead.")
    return given.resolve()


def read_corpus(path: str | Path, fmt: str, mapping: ColumnMapping, report: ImportReport) -> Iterator[DocumentRecord]:
    """Stream a corpus file in one of ``CORPUS_FORMATS`` (the mapping is ignored for Annif's TSV).

    Raises:
        ImportFailed: an unknown format.
    """
    if fmt in ("csv", "tsv"):
        return read_csv(path, mapping, report, delimiter="\t" if fmt == "tsv" else ",")
    if fmt == "jsonl":
        return read_jsonl(path, mapping, report)
    if fmt == "annif-tsv":
        return read_annif_tsv(path, report)
    if fmt == "parquet":
        return read_parquet(path, mapping, report)
    raise ImportFailed(f"Unknown corpus format {fmt!r}; use one of {', '.join(CORPUS_FORMATS)}.")
