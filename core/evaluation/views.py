"""Read models for the Evaluate page: label statistics, LLM-vs-SME agreement, labels judged correct, SME time."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from core.evaluation.agreement import THREE_POINT, TWO_POINT, Agreement, agreement_scales, from_matrix, merge_two_point
from core.newlabels.views import campaign_curve
from storage.db import Database
from storage.models import (
    RATER_LLM,
    RATER_SME,
    Campaign,
    Document,
    DocumentLabel,
    Label,
    LabelParent,
    LLMJudgment,
    ModelVersion,
    PredictionRecord,
    Rating,
)

OVERALL = "(all)"


@dataclass
class LabelFrequency:
    test_documents: int
    mean_labels: float
    labels_20plus: int
    labels_once: int
    frequencies: list[int]


def label_frequency(db: Database, project_id: int) -> LabelFrequency:
    """Documents per label over the project, and the test split's size and label cardinality."""
    with db.session() as s:
        docs = select(Document.id).where(Document.project_id == project_id, Document.removed.is_(False))
        freq = [n for _, n in s.execute(select(DocumentLabel.label_id, func.count())
                                        .where(DocumentLabel.document_id.in_(docs))
                                        .group_by(DocumentLabel.label_id)).all()]
        n_docs = s.scalar(select(func.count()).select_from(docs.subquery())) or 0
        test = s.scalar(select(func.count()).where(Document.project_id == project_id, Document.split == "test",
                                                   Document.removed.is_(False))) or 0
    return LabelFrequency(test, sum(freq) / n_docs if n_docs else 0.0, sum(1 for n in freq if n >= 20),
                          sum(1 for n in freq if n == 1), freq)


def top_level_branches(db: Database, project_id: int, label_ids: set[int]) -> dict[int, list[str]]:
    """The names of the top-level labels (roots) above each label; a root is its own branch."""
    with db.session() as s:
        parents: dict[int, list[int]] = defaultdict(list)
        for c, p in s.execute(select(LabelParent.child_id, LabelParent.parent_id)
                              .join(Label, Label.id == LabelParent.child_id).where(Label.project_id == project_id)):
            parents[c].append(p)
        roots: dict[int, set[int]] = {}

        def roots_of(label: int, trail: frozenset[int] = frozenset()) -> set[int]:
            if label not in roots:
                ups = [p for p in parents.get(label, []) if p not in trail]
                roots[label] = set().union(*(roots_of(p, trail | {label}) for p in ups)) if ups else {label}
            return roots[label]

        wanted = {lab: roots_of(lab) for lab in label_ids}
        ids = set().union(*wanted.values()) if wanted else set()
        names = dict(s.execute(select(Label.id, Label.pref_label).where(Label.id.in_(ids))).all())
    return {lab: sorted(names.get(r, str(r)) for r in rs) for lab, rs in wanted.items()}


@dataclass
class RatingsData:
    """Every rating of a project as frames, with each label's top-level branches."""

    sme: pd.DataFrame  # document_id, label_id, version_id, user_id, rating, seconds, llm_shown
    llm: pd.DataFrame  # document_id, label_id, version_id, rater, rating
    branches: dict[int, list[str]] = field(default_factory=dict)
    llm_raters: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.sme.empty and self.llm.empty


def load_ratings(db: Database, project_id: int) -> RatingsData:
    """All SME and LLM ratings of the project (one query) and the branches of the labels they rate."""
    query = select(Rating.document_id, Rating.label_id, Rating.model_version_id.label("version_id"), Rating.kind,
                   Rating.rater, Rating.user_id, Rating.rating, Rating.seconds, Rating.llm_shown,
                   Rating.id).where(Rating.project_id == project_id)
    with db.engine.connect() as con:
        frame = pd.read_sql(query, con)
    frame["llm_shown"] = frame["llm_shown"].astype(bool)
    sme = frame[frame["kind"] == RATER_SME].drop(columns=["kind"])
    llm = frame[frame["kind"] == RATER_LLM].drop(columns=["kind", "user_id", "seconds", "llm_shown"])
    branches = top_level_branches(db, project_id, set(frame["label_id"].astype(int))) if len(frame) else {}
    return RatingsData(sme, llm, branches, sorted(llm["rater"].unique()))


def _per_label(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """One rating per (document, label, ...): the same judgment collected under several versions counts once."""
    return frame.sort_values("id").drop_duplicates(["document_id", "label_id", *by], keep="last")


def rating_pairs(data: RatingsData, llm_rater: str) -> pd.DataFrame:
    """(LLM rating, SME rating) per SME, document and label, with whether the SME saw the LLM's rating."""
    llm = _per_label(data.llm[data.llm["rater"] == llm_rater], [])[["document_id", "label_id", "rating"]]
    sme = _per_label(data.sme, ["user_id"])[["document_id", "label_id", "user_id", "rating", "llm_shown"]]
    return sme.merge(llm, on=["document_id", "label_id"], suffixes=("_sme", "_llm"))


@dataclass(frozen=True)
class AgreementRow:
    group: str
    three: Agreement
    two: Agreement

    def as_dict(self) -> dict[str, Any]:
        pct = lambda a: None if a.percent is None else round(100 * a.percent, 1)  # noqa: E731
        kap = lambda a: None if a.kappa is None else round(a.kappa, 3)  # noqa: E731
        return {"branch": self.group, "pairs": self.three.n, "agree 3-point %": pct(self.three),
                "kappa 3-point": kap(self.three), "agree 2-point %": pct(self.two), "kappa 2-point": kap(self.two)}


def branch_table(branches: dict[int, list[str]]) -> pd.DataFrame:
    """(label_id, branch) rows: a label under several top-level branches has a row for each."""
    return pd.DataFrame([(lab, b) for lab, bs in branches.items() for b in bs], columns=["label_id", "branch"])


def with_branches(frame: pd.DataFrame, branches: dict[int, list[str]]) -> pd.DataFrame:
    """``frame`` once as the whole (branch ``OVERALL``) and once per top-level branch of its label."""
    per_branch = frame.merge(branch_table(branches), on="label_id")
    return pd.concat([frame.assign(branch=OVERALL), per_branch], ignore_index=True)


def agreement_by_branch(pairs: pd.DataFrame, branches: dict[int, list[str]]) -> list[AgreementRow]:
    """Agreement overall and per top-level branch (a label under several branches counts in each).

    One count of (branch, LLM rating, SME rating) cells gives every branch's confusion matrix at once.
    """
    cells = (with_branches(pairs, branches).groupby(["branch", "rating_llm", "rating_sme"]).size()
             .unstack(["rating_llm", "rating_sme"], fill_value=0))
    cells = cells.reindex(columns=pd.MultiIndex.from_product([THREE_POINT, THREE_POINT]), fill_value=0)
    rows = []
    for branch, counts in zip(cells.index, cells.to_numpy(), strict=True):
        matrix = counts.reshape(3, 3)
        rows.append(AgreementRow(str(branch), from_matrix(matrix, THREE_POINT), from_matrix(merge_two_point(matrix),
                                                                                            TWO_POINT)))
    return sorted(rows, key=lambda r: (r.group != OVERALL, -r.three.n, r.group))


def agreement_by_mode(pairs: pd.DataFrame) -> list[AgreementRow]:
    """Agreement of blind SME ratings and of those made with the LLM's rating in view (anchoring shows here)."""
    rows = []
    for shown, name in ((False, "blind (LLM hidden)"), (True, "LLM shown")):
        part = pairs[pairs["llm_shown"] == shown]
        if len(part):
            scales = agreement_scales([int(x) for x in part["rating_llm"]], [int(x) for x in part["rating_sme"]])
            rows.append(AgreementRow(name, scales["3-point"], scales["2-point"]))
    return rows


def version_names(db: Database, project_id: int) -> dict[int, str]:
    with db.session() as s:
        return {i: f"v{n} ({k})" for i, n, k in s.execute(select(ModelVersion.id, ModelVersion.number, ModelVersion.kind)
                                                          .where(ModelVersion.project_id == project_id))}


def sme_consensus(sme: pd.DataFrame) -> pd.DataFrame:
    """One SME rating per (document, label): the lower median of the SMEs' latest ratings (ties go to the lower)."""
    latest = _per_label(sme, ["user_id"]).sort_values(["document_id", "label_id", "rating"])
    keys = latest.groupby(["document_id", "label_id"])["rating"]
    position, size = keys.cumcount(), keys.transform("size")
    return latest[position == (size - 1) // 2][["document_id", "label_id", "rating"]]


def correct_in_top10(db: Database, project_id: int, data: RatingsData, llm_rater: str | None, version_ids: list[int],
                     threshold: int = 1, k: int = 10) -> pd.DataFrame:
    """The paper's Table 2: labels judged correct (rating >= ``threshold``) in each version's top-``k``.

    Ratings are matched on (document, label), whichever version they were collected under. Per version,
    rater (LLM or SME consensus, the median) and top-level branch: the documents with a rated label, the labels
    rated, those judged correct, their share, and the mean number judged correct per document.
    """
    if not version_ids:
        return pd.DataFrame()
    with db.session() as s:
        preds = pd.DataFrame(s.execute(select(PredictionRecord.model_version_id, PredictionRecord.document_id,
                                              PredictionRecord.label_id)
                                       .where(PredictionRecord.model_version_id.in_(version_ids),
                                              PredictionRecord.rank <= k)).all(),
                             columns=["version_id", "document_id", "label_id"])
    raters = {}
    if llm_rater is not None and not data.llm.empty:
        llm = _per_label(data.llm[data.llm["rater"] == llm_rater], [])
        raters["LLM"] = llm[["document_id", "label_id", "rating"]]
    if not data.sme.empty:
        raters["SME"] = sme_consensus(data.sme)
    names = version_names(db, project_id)
    rows: list[pd.DataFrame] = []
    for rater, ratings in raters.items():
        judged = preds.merge(ratings, on=["document_id", "label_id"])
        if judged.empty:
            continue
        judged["correct"] = judged["rating"] >= threshold
        stats = (with_branches(judged, data.branches).groupby(["version_id", "branch"])
                 .agg(documents=("document_id", "nunique"), rated=("correct", "size"), correct=("correct", "sum"))
                 .reset_index())
        rows.append(pd.DataFrame({
            "branch": stats["branch"], "version": [names.get(int(v), str(v)) for v in stats["version_id"]],
            "rater": rater, "documents": stats["documents"], "labels rated": stats["rated"],
            "judged correct": stats["correct"].astype(int), "share correct": (stats["correct"] / stats["rated"]).round(3),
            "correct per document": (stats["correct"] / stats["documents"]).round(2)}))
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    if out.empty:
        return out
    out["_overall"] = out["branch"] != OVERALL
    return out.sort_values(["_overall", "documents", "branch", "rater", "version"],
                           ascending=[True, False, True, True, True]).drop(columns="_overall")


def sme_minutes(data: RatingsData) -> pd.DataFrame:
    """Median SME minutes per document with and without the LLM's help (one time per SME, document, version)."""
    timed = data.sme.dropna(subset=["seconds"])
    if timed.empty:
        return pd.DataFrame(columns=["mode", "documents", "median minutes"])
    per_doc = timed.groupby(["user_id", "document_id", "version_id"], as_index=False).agg(
        seconds=("seconds", "max"), llm_shown=("llm_shown", "max"))
    rows = []
    for shown, name in ((False, "without the LLM (blind)"), (True, "with the LLM's ratings")):
        part = per_doc[per_doc["llm_shown"] == shown]
        if len(part):
            rows.append({"mode": name, "documents": len(part), "median minutes": round(float(part["seconds"].median()) / 60, 2)})
    return pd.DataFrame(rows)


def llm_coverage(db: Database, project_id: int, model: str | None) -> dict[str, int]:
    """How many (document, label) verdicts of an LLM model are rated and how many explicitly unrated."""
    with db.session() as s:
        q = (select(LLMJudgment.status, func.count()).where(LLMJudgment.project_id == project_id)
             .group_by(LLMJudgment.status))
        if model:
            q = q.where(LLMJudgment.model == model)
        return {status: n for status, n in s.execute(q).all()}


def al_curves(db: Database, project_id: int) -> pd.DataFrame:
    """Recall@10 per iteration of every campaign: new labels (answered, held-out) and old labels (held-out)."""
    with db.session() as s:
        campaigns = s.execute(select(Campaign.id, Campaign.name).where(Campaign.project_id == project_id)
                              .order_by(Campaign.id)).all()
    rows = []
    for cid, name in campaigns:
        for point in campaign_curve(db, cid):
            for key, what in (("answered_R@10", "new labels, just answered"), ("heldout_R@10", "new labels, held-out"),
                              ("old_R@10", "old labels, held-out")):
                if point.get(key) is not None:
                    rows.append({"campaign": name, "iteration": point.get("iteration"), "metric": what,
                                 "Recall@10": point[key]})
    return pd.DataFrame(rows)


EXPORT_COLUMNS = ["document", "label_id", "label", "model_version", "rater_kind", "rater", "rating", "explanation",
                  "seconds", "llm_shown", "created_at"]


def ratings_export(db: Database, project_id: int) -> pd.DataFrame:
    """Every rating of the project with readable ids (no secret is ever part of a rating)."""
    with db.session() as s:
        rows = s.execute(
            select(Document.external_id, Label.external_id, Label.pref_label, ModelVersion.number, ModelVersion.kind,
                   Rating.kind, Rating.rater, Rating.rating, Rating.explanation, Rating.seconds, Rating.llm_shown,
                   Rating.created_at)
            .join(Document, Document.id == Rating.document_id).join(Label, Label.id == Rating.label_id)
            .join(ModelVersion, ModelVersion.id == Rating.model_version_id)
            .where(Rating.project_id == project_id).order_by(Rating.id)).all()
    return pd.DataFrame([[d, lid, name, f"v{n} ({kind})", rk, rater, r, e, sec, shown, at.isoformat()]
                         for d, lid, name, n, kind, rk, rater, r, e, sec, shown, at in rows], columns=EXPORT_COLUMNS)


def to_jsonl(frame: pd.DataFrame) -> str:
    return "".join(json.dumps({k: (None if pd.isna(v) else v) for k, v in row.items()}, ensure_ascii=False) + "\n"
                   for row in frame.to_dict(orient="records"))

