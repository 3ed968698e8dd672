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
            "prior w": cfg.get("prior_weight"), "bi w": cfg.get("bi_weight"),
        })
    return rows
