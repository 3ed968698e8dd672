"""Import reports and the safe opening of user files (gzip, strict UTF-8)."""

from __future__ import annotations

import ast
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from core.errors import ImportFailed

MAX_SKIP_DETAILS = 1000


@dataclass
class ImportReport:
    """What an import read, imported and skipped (with the reason for each skip)."""

    source: str = ""
    rows_read: int = 0
    imported: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    skipped_count: int = 0
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    def skip(self, where: str, reason: str) -> None:
        """Record one skipped row (details kept for the first ``MAX_SKIP_DETAILS``)."""
        self.skipped_count += 1
        if len(self.skipped) < MAX_SKIP_DETAILS:
            self.skipped.append((where, reason))

    def summary(self) -> str:
        text = f"{self.rows_read} read, {self.imported} imported, {self.skipped_count} skipped"
        if self.skipped:
            where, reason = self.skipped[0]
            text += f" (first: {where}: {reason})"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "imported": self.imported,
            "skipped_count": self.skipped_count,
            "skipped": [list(s) for s in self.skipped],
            "warnings": list(self.warnings),
            "stats": dict(self.stats),
        }


def open_text(source: str | Path | IO[bytes]) -> IO[str]:
    """Open a path or binary stream as strict UTF-8 text, un-gzipping ``.gz`` transparently.

    Decoding errors surface while reading; wrap reading in :func:`decode_guard`.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImportFailed(f"File not found: {path}")
        raw: IO[bytes] = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
    else:
        raw = source
        head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
        if head == b"\x1f\x8b":
            raw = gzip.GzipFile(fileobj=raw)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="strict", newline="")


def source_name(source: str | Path | IO[bytes]) -> str:
    if isinstance(source, (str, Path)):
        return Path(source).name
    return str(getattr(source, "name", "upload"))


def iter_decoded(lines: Iterator[str], name: str) -> Iterator[str]:
    """Yield from ``lines``, turning a UTF-8 decoding error into a clear :class:`ImportFailed`."""
    try:
        yield from lines
    except UnicodeDecodeError as exc:
        raise ImportFailed(
            f"{name} is not valid UTF-8 (byte {exc.object[exc.start:exc.start + 1]!r} at offset {exc.start} "
            "of a read block). Re-save the file as UTF-8 and import it again; nothing was imported."
        ) from exc


def parse_list(value: object) -> list[str]:
    """Parse a list cell safely: a JSON or Python literal list, or ``|``/``;``-separated text.

    Never evaluates code (``ast.literal_eval`` only accepts literals).

    Raises:
        ValueError: the cell looks like a list literal but is not a valid one.
    """
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    if not text:
        return []
    if text[0] in "[(":
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            try:
                parsed = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
                raise ValueError(f"not a valid list literal: {text[:60]!r}") from exc
        if not isinstance(parsed, (list, tuple)):
            raise ValueError(f"not a list: {text[:60]!r}")
        return [str(v).strip() for v in parsed if str(v).strip()]
    for sep in ("|", ";"):
        if sep in text:
            return [p.strip() for p in text.split(sep) if p.strip()]
    return [text]
