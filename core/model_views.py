"""Read models for the Model page: versions side by side."""

from __future__ import annotations

from typing import Any

from core.versions import VersionView

METRIC_COLUMNS = ("P@1", "P@5", "R@10", "nDCG@10", "R@30")


def version_table(versions: list[VersionView]) -> list[dict[str, Any]]:
    """One row per version: identity, test metrics and the main training settings."""
    rows = []
    for v in versions:
        cfg = v.config
        seconds = sum(float(cfg.get(k, 0) or 0) for k in ("bi.seconds", "cross.seconds", "baseline.seconds"))
        rows.append({
            "version": f"v{v.number}", "kind": v.kind, "active": "yes" if v.active else "",
            "created (UTC)": v.created_at.strftime("%Y-%m-%d %H:%M"),
            **{m: v.metrics.get(m) for m in METRIC_COLUMNS},
            "train min": round(seconds / 60, 1) if seconds else None,
            "epochs": cfg.get("epochs"), "batch": cfg.get("batch_size"), "seq": cfg.get("max_seq_length"),
            "fusion": cfg.get("fusion"),
        })
    return rows


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
