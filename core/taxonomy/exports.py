"""Exports: the current taxonomy as SKOS Turtle and CSV; documents' gold and predicted labels as CSV/JSONL and Annif TSV."""

from __future__ import annotations

import csv
import io
import re

import pandas as pd
from sqlalchemy import select

from core.taxonomy.update import current_concepts
from storage.db import Database
from storage.models import Document, DocumentLabel, Label, ModelVersion, PredictionRecord

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$")


def taxonomy_csv(db: Database, project_id: int) -> str:
    """The current taxonomy in the CSV format the importer reads (lists joined with ``|``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "label", "parents", "alt_labels", "description", "deprecated", "replaced_by"])
    for c in sorted(current_concepts(db, project_id).values(), key=lambda c: c.id):
        writer.writerow([c.id, c.pref_label, "|".join(c.parents), "|".join(c.alt_labels), c.description,
                         "true" if c.deprecated else "", c.replaced_by or ""])
    return out.getvalue()


def taxonomy_turtle(db: Database, project_id: int, scheme_name: str = "taxonomy") -> str:
    """The current taxonomy as a SKOS concept scheme in Turtle (ids that are not URIs become relative IRIs)."""
    import rdflib
    from rdflib.namespace import DCTERMS, OWL, RDF, SKOS

    def node(cid: str) -> rdflib.URIRef:
        return rdflib.URIRef(cid if _URI.match(cid) else cid.replace(" ", "%20"))

    graph = rdflib.Graph()
    graph.bind("skos", SKOS)
    graph.bind("dct", DCTERMS)
    graph.bind("owl", OWL)
    scheme = rdflib.URIRef(f"#{scheme_name.replace(' ', '_')}")
    graph.add((scheme, RDF.type, SKOS.ConceptScheme))
    for c in current_concepts(db, project_id).values():
        n = node(c.id)
        graph.add((n, RDF.type, SKOS.Concept))
        graph.add((n, SKOS.inScheme, scheme))
        graph.add((n, SKOS.prefLabel, rdflib.Literal(c.pref_label, lang="en")))
        for alt in c.alt_labels:
            graph.add((n, SKOS.altLabel, rdflib.Literal(alt, lang="en")))
        if c.description:
            graph.add((n, SKOS.scopeNote, rdflib.Literal(c.description, lang="en")))
        for p in c.parents:
            graph.add((n, SKOS.broader, node(p)))
        if c.deprecated:
            graph.add((n, OWL.deprecated, rdflib.Literal(True)))
        if c.replaced_by:
            graph.add((n, DCTERMS.isReplacedBy, node(c.replaced_by)))
    return graph.serialize(format="turtle")


def document_labels(db: Database, project_id: int, version_id: int | None = None) -> pd.DataFrame:
    """Every gold/weak label of the project's documents, and a model version's predictions (with the version)."""
    with db.session() as s:
        docs = select(Document.id).where(Document.project_id == project_id, Document.removed.is_(False))
        rows = [(d, split, ext, name, kind, source, None, None) for d, split, ext, name, kind, source in s.execute(
            select(Document.external_id, Document.split, Label.external_id, Label.pref_label, DocumentLabel.kind,
                   DocumentLabel.source)
            .join(Document, Document.id == DocumentLabel.document_id).join(Label, Label.id == DocumentLabel.label_id)
            .where(DocumentLabel.document_id.in_(docs)).order_by(Document.id, Label.pref_label))]
        if version_id is not None:
            number, kind = s.execute(select(ModelVersion.number, ModelVersion.kind)
                                     .where(ModelVersion.id == version_id)).one()
            rows += [(d, split, ext, name, "predicted", f"v{number} ({kind})", rank, round(score, 6))
                     for d, split, ext, name, rank, score in s.execute(
                         select(Document.external_id, Document.split, Label.external_id, Label.pref_label,
                                PredictionRecord.rank, PredictionRecord.score)
                         .join(Document, Document.id == PredictionRecord.document_id)
                         .join(Label, Label.id == PredictionRecord.label_id)
                         .where(PredictionRecord.model_version_id == version_id, PredictionRecord.document_id.in_(docs))
                         .order_by(Document.id, PredictionRecord.rank))]
    return pd.DataFrame(rows, columns=["document", "split", "label_id", "label", "kind", "source", "rank", "score"])


def annif_tsv(db: Database, project_id: int, split: str | None = None) -> str:
    """Annif's short-text corpus: ``title abstract<TAB><label-uri> ...``, one document per line, gold labels."""
    with db.session() as s:
        q = select(Document.id, Document.title, Document.abstract).where(Document.project_id == project_id,
                                                                         Document.removed.is_(False))
        if split is not None:
            q = q.where(Document.split == split)
        docs = s.execute(q.order_by(Document.id)).all()
        gold: dict[int, list[str]] = {}
        for d, ext in s.execute(select(DocumentLabel.document_id, Label.external_id)
                                .join(Label, Label.id == DocumentLabel.label_id)
                                .where(DocumentLabel.document_id.in_(q.with_only_columns(Document.id)),
                                       DocumentLabel.kind == "gold")
                                .order_by(Label.external_id)):
            gold.setdefault(d, []).append(ext)
    lines = []
    for d, title, abstract in docs:
        text = " ".join(f"{title or ''} {abstract or ''}".split())  # tabs and newlines would break the format
        if text and gold.get(d):
            lines.append(f"{text}\t" + " ".join(f"<{ext}>" for ext in gold[d]))
    return "\n".join(lines) + ("\n" if lines else "")
