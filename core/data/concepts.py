"""Taxonomies as plain objects: parsers (SKOS, MeSH tree numbers, CSV) and structural checks."""

from __future__ import annotations

import csv
import gzip
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from core.data.reports import ImportReport, iter_decoded, open_text, parse_list, source_name
from core.errors import ImportFailed, TaxonomyError


@dataclass
class Concept:
    """One label of a taxonomy, identified by a stable id."""

    id: str
    pref_label: str
    alt_labels: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    description: str = ""
    deprecated: bool = False
    replaced_by: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LabelRow:
    """A servable label: row id, stable id, names and parents (row ids)."""

    id: int
    external_id: str
    pref_label: str
    alt_labels: tuple[str, ...] = ()
    parent_ids: tuple[int, ...] = ()
    description: str = ""


@dataclass
class Taxonomy:
    """A poly-hierarchy of concepts keyed by id, with the report of how it was read."""

    concepts: dict[str, Concept]
    report: ImportReport = field(default_factory=ImportReport)

    def __len__(self) -> int:
        return len(self.concepts)

    def children(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for c in self.concepts.values():
            for p in c.parents:
                out[p].append(c.id)
        return out

    def multi_parent_count(self) -> int:
        return sum(1 for c in self.concepts.values() if len(c.parents) >= 2)

    def restrict(self, keep: Iterable[str]) -> Taxonomy:
        """Keep only ``keep``; each kept concept's parents become its nearest kept ancestors.

        Used to cut a large taxonomy (MeSH) down to the labels a corpus uses while keeping
        its hierarchy: an ancestor chain through dropped concepts is shortened, not lost.
        """
        keep_set = {k for k in keep if k in self.concepts}
        memo: dict[str, set[str]] = {}

        def nearest_kept(cid: str) -> set[str]:
            # Iterative post-order walk up the (acyclic) parent graph.
            stack = [cid]
            while stack:
                top = stack[-1]
                if top in memo:
                    stack.pop()
                    continue
                pending = [p for p in self.concepts[top].parents if p in self.concepts and p not in memo]
                pending = [p for p in pending if p not in keep_set]
                if pending:
                    stack.extend(pending)
                    continue
                found: set[str] = set()
                for p in self.concepts[top].parents:
                    if p in keep_set:
                        found.add(p)
                    elif p in memo:
                        found |= memo[p]
                memo[top] = found
                stack.pop()
            return memo[cid]

        out: dict[str, Concept] = {}
        for cid in sorted(keep_set):
            c = self.concepts[cid]
            out[cid] = Concept(
                id=c.id,
                pref_label=c.pref_label,
                alt_labels=list(c.alt_labels),
                parents=sorted(nearest_kept(cid)),
                description=c.description,
                deprecated=c.deprecated,
                replaced_by=c.replaced_by,
                extra=dict(c.extra),
            )
        return Taxonomy(out, report=self.report)


def find_cycle(concepts: dict[str, Concept]) -> list[str] | None:
    """Return one cycle as a list of ids (first id repeated at the end), or None."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(concepts, white)
    for start in concepts:
        if color[start] != white:
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, i = stack.pop()
            if i == 0:
                color[node] = grey
                path.append(node)
            parents = [p for p in concepts[node].parents if p in concepts]
            if i < len(parents):
                stack.append((node, i + 1))
                nxt = parents[i]
                if color[nxt] == grey:
                    return [*path[path.index(nxt):], nxt]
                if color[nxt] == white:
                    stack.append((nxt, 0))
            else:
                color[node] = black
                path.pop()
    return None


def validate(taxonomy: Taxonomy) -> None:
    """Check the structure; raise :class:`TaxonomyError` listing every problem found.

    Checks: parents that do not exist (dangling), and cycles in the parent graph.
    """
    problems: list[str] = []
    dangling = [
        (c.id, p) for c in taxonomy.concepts.values() for p in c.parents if p not in taxonomy.concepts
    ]
    if dangling:
        shown = "; ".join(f"{cid!r} -> missing parent {p!r}" for cid, p in dangling[:10])
        more = f" (and {len(dangling) - 10} more)" if len(dangling) > 10 else ""
        problems.append(f"{len(dangling)} dangling parent link(s): {shown}{more}")
    cycle = find_cycle(taxonomy.concepts)
    if cycle:
        problems.append("cycle in the hierarchy: " + " -> ".join(cycle))
    if problems:
        raise TaxonomyError(
            "The taxonomy is invalid; nothing was imported. " + " | ".join(problems), taxonomy.report
        )


# --- SKOS (RDF/XML, Turtle, JSON-LD) -------------------------------------------------------

_RDF_FORMATS = {".xml": "xml", ".rdf": "xml", ".owl": "xml", ".ttl": "turtle", ".nt": "nt",
                ".json": "json-ld", ".jsonld": "json-ld", ".n3": "n3"}


def guess_rdf_format(name: str) -> str:
    """RDF serialization from a file name (``.gz`` ignored)."""
    stem = name[:-3] if name.endswith(".gz") else name
    fmt = _RDF_FORMATS.get(Path(stem).suffix.lower())
    if fmt is None:
        raise ImportFailed(
            f"Cannot tell the RDF format of {name!r}: use .rdf/.xml (RDF/XML), .ttl (Turtle) or .json/.jsonld (JSON-LD)."
        )
    return fmt


def _best_literal(values: Iterable[Any], lang: str = "en") -> str:
    values = list(values)
    for v in values:
        if getattr(v, "language", None) == lang:
            return str(v)
    for v in values:
        if getattr(v, "language", None) is None:
            return str(v)
    return str(values[0]) if values else ""


def read_skos(source: str | Path | IO[bytes], fmt: str | None = None, lang: str = "en") -> Taxonomy:
    """Read a SKOS concept scheme with rdflib.

    Concepts are ``skos:Concept`` subjects (or anything with a ``skos:prefLabel``); parents come
    from ``skos:broader`` and inverted ``skos:narrower``; ``owl:deprecated`` and PhySH's own
    ``deprecated`` flag mark deprecation; ``dct:isReplacedBy`` names a replacement.
    """
    import rdflib
    from rdflib.namespace import DCTERMS, OWL, RDF, SKOS

    name = source_name(source)
    fmt = fmt or guess_rdf_format(name)
    graph = rdflib.Graph()
    base = "http://relative.invalid/"  # relative IRIs (rdf:about="123") resolve here, then are stripped
    try:
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.is_file():
                raise ImportFailed(f"File not found: {path}")
            with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as fh:
                graph.parse(fh, format=fmt, publicID=base)
        else:
            graph.parse(source, format=fmt, publicID=base)
    except ImportFailed:
        raise
    except Exception as exc:  # rdflib raises many parser-specific types
        raise ImportFailed(f"{name} is not valid {fmt} RDF: {exc}"[:500]) from exc

    subjects = set(graph.subjects(RDF.type, SKOS.Concept)) | set(graph.subjects(SKOS.prefLabel, None))
    subjects = {s for s in subjects if (s, RDF.type, SKOS.ConceptScheme) not in graph}
    def local(node: Any) -> str:
        text = str(node)
        return text[len(base):] if text.startswith(base) else text

    report = ImportReport(source=name)
    deprecated_preds = [OWL.deprecated, rdflib.URIRef("https://physh.org/rdf/2018/01/01/core#deprecated")]
    concepts: dict[str, Concept] = {}
    broader: dict[str, set[str]] = defaultdict(set)
    for s in subjects:
        report.rows_read += 1
        cid = local(s)
        pref = _best_literal(graph.objects(s, SKOS.prefLabel), lang)
        if not pref:
            report.skip(cid, "no skos:prefLabel")
            continue
        alts = sorted({str(v) for v in graph.objects(s, SKOS.altLabel) if getattr(v, "language", lang) in (lang, None)})
        note = _best_literal(list(graph.objects(s, SKOS.scopeNote)) + list(graph.objects(s, SKOS.definition)), lang)
        deprecated = any(str(v).lower() in ("true", "1") for p in deprecated_preds for v in graph.objects(s, p))
        replaced = next(iter(graph.objects(s, DCTERMS.isReplacedBy)), None)
        broader[cid].update(local(o) for o in graph.objects(s, SKOS.broader))
        for child in graph.objects(s, SKOS.narrower):
            broader[local(child)].add(cid)
        concepts[cid] = Concept(cid, pref, alts, [], note, deprecated, local(replaced) if replaced else None)
    # A broader link to a concept scheme is not a parent.
    schemes = {local(s) for s in graph.subjects(RDF.type, SKOS.ConceptScheme)}
    for cid, c in concepts.items():
        c.parents = sorted(p for p in broader.get(cid, ()) if p not in schemes)
    if _uses_path_ids(concepts):
        concepts = _merge_path_ids(concepts)
    report.imported = len(concepts)
    return Taxonomy(concepts, report)


def _uses_path_ids(concepts: dict[str, Concept]) -> bool:
    """True when ids are dotted paths ("a.b.c" under "a.b"), as in ACM CCS's SKOS release."""
    dotted = [c for c in concepts.values() if "." in c.id]
    return bool(dotted) and all(c.parents == [c.id.rsplit(".", 1)[0]] for c in dotted)


def _merge_path_ids(concepts: dict[str, Concept]) -> dict[str, Concept]:
    """Merge the copies of a concept placed at several paths into one poly-hierarchical concept."""
    merged: dict[str, Concept] = {}
    for c in concepts.values():
        cid = c.id.rsplit(".", 1)[-1]
        parents = [p.rsplit(".", 1)[-1] for p in c.parents]
        m = merged.get(cid)
        if m is None:
            merged[cid] = Concept(cid, c.pref_label, list(c.alt_labels), parents, c.description, c.deprecated,
                                  c.replaced_by, {"paths": [c.id]})
        else:
            m.parents = sorted(set(m.parents) | set(parents))
            m.extra["paths"].append(c.id)
    return merged


# --- MeSH tree numbers ----------------------------------------------------------------------


def read_mesh_tree(source: str | Path | IO[bytes]) -> Taxonomy:
    """Read MeSH's tree-number TSV (``mesh_id, mesh_name, mesh_tree_number``).

    A descriptor may sit at several tree numbers; its parents are the descriptors at each tree
    number minus its last ``.segment``. Tree numbers are kept in ``extra["tree_numbers"]``.
    """
    name = source_name(source)
    report = ImportReport(source=name)
    names: dict[str, str] = {}
    trees: dict[str, list[str]] = defaultdict(list)
    owner: dict[str, str] = {}
    with open_text(source) as fh:
        reader = csv.reader(iter_decoded(fh, name), delimiter="\t")
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != ["mesh_id", "mesh_name", "mesh_tree_number"]:
            raise ImportFailed(f"{name}: expected the header 'mesh_id<TAB>mesh_name<TAB>mesh_tree_number', got {header!r}")
        for lineno, row in enumerate(reader, start=2):
            report.rows_read += 1
            if len(row) != 3 or not all(x.strip() for x in row):
                report.skip(f"line {lineno}", f"expected 3 non-empty tab-separated fields, got {len(row)}")
                continue
            mid, mname, tree = (x.strip() for x in row)
            if mid in names and names[mid] != mname:
                raise TaxonomyError(f"{name}: duplicate id {mid!r} with two names ({names[mid]!r}, {mname!r}); nothing was imported.")
            if tree in owner and owner[tree] != mid:
                raise TaxonomyError(f"{name}: tree number {tree} given to both {owner[tree]} and {mid}; nothing was imported.")
            names[mid] = mname
            owner[tree] = mid
            trees[mid].append(tree)
    concepts: dict[str, Concept] = {}
    for mid, mname in names.items():
        parents = sorted({owner[t.rsplit(".", 1)[0]] for t in trees[mid] if "." in t and t.rsplit(".", 1)[0] in owner})
        dangling = [t.rsplit(".", 1)[0] for t in trees[mid] if "." in t and t.rsplit(".", 1)[0] not in owner]
        if dangling:
            report.warnings.append(f"{mid}: parent tree number(s) {dangling} not in file")
        concepts[mid] = Concept(mid, mname, parents=parents, extra={"tree_numbers": sorted(trees[mid])})
    report.imported = len(concepts)
    return Taxonomy(concepts, report)


# --- simple CSV -----------------------------------------------------------------------------

CSV_COLUMNS = ("id", "label", "parents", "alt_labels", "description", "deprecated", "replaced_by")


def name_columns(text: str | None) -> list[str] | None:
    """A table's name columns as a user types them (``name_en,name_de``); None when none is named."""
    columns = [c.strip() for c in (text or "").split(",") if c.strip()]
    return columns or None


def read_taxonomy_csv(source: str | Path | IO[bytes], label_columns: Sequence[str] = ("label",)) -> Taxonomy:
    """Read a taxonomy table (CSV, or TSV by its name): ``id, label[, parents][, alt_labels][, description]
    [, deprecated][, replaced_by]``.

    ``parents`` and ``alt_labels`` are lists (``a|b``, or a JSON/Python list literal); ``deprecated`` is
    true/yes/1 or empty (the CSV export of the Taxonomy page writes every column). ``label_columns`` name the
    columns holding a concept's names, best first (e.g. ``name_en, name_de`` for a vocabulary named in two
    languages): the first non-empty one is the preferred name, the others become alternative names.
    """
    name = source_name(source)
    report = ImportReport(source=name)
    concepts: dict[str, Concept] = {}
    stem = name.lower().removesuffix(".gz")
    with open_text(source) as fh:
        reader = csv.DictReader(iter_decoded(fh, name), delimiter="\t" if stem.endswith(".tsv") else ",")
        fields = [f.strip() for f in reader.fieldnames or []]
        missing = [c for c in ("id", *label_columns) if c not in fields]
        if missing:
            raise ImportFailed(f"{name}: missing column(s) {missing}; expected columns {list(CSV_COLUMNS)} "
                               f"(its header has {len(fields)} column(s))")
        reader.fieldnames = fields
        for row in reader:
            report.rows_read += 1
            where = f"line {reader.line_num}"
            if None in row:
                report.skip(where, f"{len(row[None]) + len(fields)} fields where the header has {len(fields)}")
                continue
            cid = (row.get("id") or "").strip()
            names = list(dict.fromkeys(n for n in ((row.get(c) or "").strip() for c in label_columns) if n))
            if not cid or not names:
                report.skip(where, "empty id or label")
                continue
            if cid in concepts:
                raise TaxonomyError(f"{name}: duplicate id {cid!r} ({where}); nothing was imported.", report)
            label = names[0]
            try:
                parents = parse_list(row.get("parents"))
                alts = [*names[1:], *(a for a in parse_list(row.get("alt_labels")) if a not in names)]
            except ValueError as exc:
                report.skip(where, str(exc))
                continue
            deprecated = (row.get("deprecated") or "").strip().lower() in ("true", "yes", "1")
            concepts[cid] = Concept(cid, label, alts, parents, (row.get("description") or "").strip(), deprecated,
                                    (row.get("replaced_by") or "").strip() or None)
    report.imported = len(concepts)
    return Taxonomy(concepts, report)


TAXONOMY_FORMATS = ("skos", "mesh-tree", "csv")


def read_taxonomy(source: str | Path | IO[bytes], fmt: str | None = None,
                  label_columns: Sequence[str] | None = None) -> Taxonomy:
    """Read and validate a taxonomy in any supported format (guessed from the name if omitted; a table when
    ``label_columns`` name its columns of names, see :func:`read_taxonomy_csv`)."""
    name = source_name(source).lower()
    if fmt is None and label_columns:
        fmt = "csv"
    if fmt is None:
        stem = name[:-3] if name.endswith(".gz") else name
        if stem.endswith(".tsv"):
            fmt = "mesh-tree"
        elif stem.endswith(".csv"):
            fmt = "csv"
        else:
            fmt = "skos"
    if fmt == "skos":
        tax = read_skos(source)
    elif fmt == "mesh-tree":
        tax = read_mesh_tree(source)
    elif fmt == "csv":
        tax = read_taxonomy_csv(source, tuple(label_columns or ("label",)))
    else:
        raise ImportFailed(f"Unknown taxonomy format {fmt!r}; use one of {TAXONOMY_FORMATS}")
    if not tax.concepts:
        raise ImportFailed(f"{source_name(source)}: no concepts found; nothing was imported. {tax.report.summary()}")
    validate(tax)
    return tax


def label_text(pref_label: str, alt_labels: Iterable[str] = (), max_alts: int = 0,
               parent_names: Iterable[str] = ()) -> str:
    """The text a model reads for a label: its preferred name, optionally enriched with some alternative
    names (``(a; b)``) and the names of its parents (``[in: p]``)."""
    alts = [a for a in alt_labels if a and a != pref_label][:max_alts]
    text = pref_label if not alts else f"{pref_label} ({'; '.join(alts)})"
    parents = [p for p in parent_names if p]
    return text if not parents else f"{text} [in: {'; '.join(parents)}]"
