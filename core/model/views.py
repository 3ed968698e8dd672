"""Read models for the Model page: versions side by side."""

from __future__ import annotations

from typing import Any

from core.model.training import TrainConfig
from core.model.versions import VersionView

METRIC_COLUMNS = ("P@1", "P@5", "R@10", "nDCG@10", "R@30")


def version_table(versions: list[VersionView]) -> list[dict[str, Any]]:
    """One row per version: identity, test metrics (with the number of test documents) and the main training
    settings; a column no version has a value for is left out."""
    rows = []
    for v in versions:
        cfg = v.config
        seconds = sum(float(cfg.get(k, 0) or 0) for k in ("bi.seconds", "cross.seconds", "baseline.seconds"))
        rows.append({
            "version": f"v{v.number}", "kind": v.kind, "active": "yes" if v.active else "",
            "created (UTC)": v.created_at.strftime("%Y-%m-%d %H:%M"),
            **{m: v.metrics.get(m) for m in METRIC_COLUMNS}, "test docs": v.metrics.get("test_docs"),
            "train min": round(seconds / 60, 1) if seconds else None,
            "budget min": cfg.get("time_budget_min") or None,
            "epochs": cfg.get("epochs"), "batch": cfg.get("batch_size"), "seq": cfg.get("max_seq_length"),
            "fusion": cfg.get("fusion"), "label text": label_text_summary(cfg), "re-ranker": rerank_summary(cfg),
        })
    keep = [k for k in (rows[0] if rows else {}) if any(r[k] not in (None, "") for r in rows) or k in ("version", "active")]
    return [{k: r[k] for k in keep} for r in rows]


def rerank_summary(cfg: dict[str, Any]) -> str | None:
    """The bundle's re-ranking rule as decided on validation, with the nDCG@10 it measured there: "off (+0.001)",
    "40% of documents (+0.012)", "all (+0.021)"; None for a version without a re-ranker or measured rule."""
    rule, gain = cfg.get("rerank_rule"), cfg.get("rerank_gain")
    if rule is None or gain is None:
        return None
    said = {"off": "off", "all": "every document"}.get(rule) or f"{float(cfg.get('rerank_share') or 0):.0%} of documents"
    return f"{said} ({float(gain):+.3f} nDCG@10 on validation)"


def label_text_summary(cfg: dict[str, Any]) -> str | None:
    """What the encoders read for a label, and why: "name + records' words (.373 vs .307)" with the validation
    nDCG@10 of each text when the training compared them; None for a version trained before the choice."""
    chosen = cfg.get("label_text_chosen") or ({"name": "name", "terms": "name_terms"}.get(cfg.get("label_text") or ""))
    if chosen is None:
        return None
    said = {"name": "name", "name_terms": "name + records' words"}[chosen]
    scores = [cfg.get(f"label_text_val.{k}") for k in (chosen, "name" if chosen == "name_terms" else "name_terms")]
    return f"{said} ({scores[0]:.3f} vs {scores[1]:.3f} on validation)" if None not in scores else said


def metrics_side_by_side(versions: list[VersionView]) -> list[dict[str, Any]]:
    """The newest measured version of each kind (zero-shot, trained...), its test metrics side by side."""
    newest: dict[str, VersionView] = {}
    for v in versions:  # newest first
        if v.metrics and v.kind not in newest:
            newest[v.kind] = v
    return [{"model": v.name + (" (active)" if v.active else ""), **{m: v.metrics.get(m) for m in METRIC_COLUMNS[:4]},
             "test docs": v.metrics.get("test_docs")} for v in newest.values()]


def training_estimate(versions: list[VersionView], train_pairs: int, cfg: TrainConfig) -> str:
    """What the training form says a run will take, from the speed measured by the newest trained version
    (seconds per bi-encoder and cross-encoder step, scaled to the form's batch size and sequence length)."""
    measured = next((v for v in versions if v.kind == "bicross" and v.config.get("bi.seconds_per_step")), None)
    if measured is None:
        return ("No training has been measured on this machine yet, so no estimate: set a time budget to bound the "
                "first run (the job shows its ETA as it goes).")
    mc = measured.config

    def scale(key: str, batch: int, seq: int) -> float:
        return float(mc.get(key) or 0) * (cfg.batch_size / max(1, batch)) * (cfg.max_seq_length / max(1, seq))

    seconds = 0.0
    if cfg.train_bi:
        seconds += cfg.epochs * train_pairs / cfg.batch_size * scale("bi.seconds_per_step", mc.get("batch_size", 32),
                                                                       mc.get("max_seq_length", 128))
    if cfg.train_cross and mc.get("cross.seconds_per_step"):
        examples = train_pairs * (1 + cfg.cross_negatives)
        if cfg.cross_max_examples:
            examples = min(examples, cfg.cross_max_examples)
        seconds += cfg.cross_epochs * examples / cfg.batch_size * scale("cross.seconds_per_step", mc.get("batch_size", 32),
                                                                         mc.get("cross_max_length", 128))
    text = (f"About {max(1, round(seconds / 60))} min for the encoders on this project's {train_pairs:,} training "
            f"(document, label) pairs, at the speed {measured.name} was trained at "
            f"({float(mc['bi.seconds_per_step']):.2f} s per bi-encoder step)")
    if cfg.train_cross and not mc.get("cross.seconds_per_step"):
        text += "; the cross-encoder's speed is not measured yet"
    if cfg.time_budget_min:
        text += f"; the time budget stops the whole job at about {cfg.time_budget_min:g} min"
    return text + "."


# How each source is named on the page.
SOURCES = {"cosine": "bi-encoder", "cosine_gap": "bi-encoder (vs best)", "prior": "label prior",
           "seen": "has training docs", "lexical": "name in text", "sparse": "sparse backend",
           "neighbours": "similar training docs", "first_stage": "first stage", "cross": "cross-encoder",
           "bias": "baseline"}


def explain_rows(ranker: Any, text: str, places: dict[int, tuple[str, list[str]]] | None = None,
                 k: int = 10) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two tables for one document: each label's signals, and what each source added to its score.

    ``places`` maps label ids to (name, paths) for display; labels are shown by id without it.
    """
    explained = ranker.explain(text, k)
    name = (lambda i: places[i][0]) if places else str
    signals, contributions = [], []
    for e in explained:
        label = name(e["label_id"])
        signals.append({"label": label, "score": round(e["score"], 4),
                        **{SOURCES[f]: round(e[f], 4) for f in SOURCES if f in e and f != "bias"}})
        contributions.append({"label": label, **{SOURCES.get(f, f): round(v, 4) for f, v in e["contributions"].items()}})
    return signals, contributions
