"""A newcomer's first hour: minutes from pressing "Build the demo project and train a first model" to a trained,
active model, and that model's P@1/P@5/R@10/nDCG@10 on every TEST document (the canonical split).

It queues exactly what the start page's button queues (the demo job with the first model's time budget) into a
fresh data folder and runs the jobs in a worker, as the app's worker would. The demo files are read from
``../shared/data`` (or ``--data``): the same bytes a fresh clone downloads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.common import ROOT, build_demo, command_line, machine, publish, temp_data_dir
from core.data.demo import FIRST_MODEL_MINUTES
from core.model.versions import list_versions

METRICS = ("P@1", "P@5", "R@10", "nDCG@10")
TARGET_MINUTES, TARGET_R10 = 15.0, 0.30


def run(data: Path, minutes: float) -> dict:
    with temp_data_dir(XMTC_DEMO_DATA=str(data)):
        db, jobs, total = build_demo(minutes)
        versions = {v.kind: v for v in list_versions(db, 1)}
        trained, zero = versions["bicross"], versions["zero_shot"]
        assert trained.active
        out = {
            "minutes_build_to_trained": round(total / 60, 2),
            "minutes_per_job": {k: round((j.finished_at - j.started_at).total_seconds() / 60, 2) for k, j in jobs.items()},
            "train_budget_min": minutes,
            **{k: trained.metrics[k] for k in METRICS},
            "test_docs": trained.metrics["test_docs"],
            **{f"zero_shot_{k}": zero.metrics[k] for k in METRICS},
            "bi_steps": trained.config.get("bi.steps"), "bi_planned_steps": trained.config.get("bi.planned_steps"),
            "bi_seconds_per_step": trained.config.get("bi.seconds_per_step"),
            "reserved_seconds": trained.config.get("budget.reserved_seconds"),
            # held-out TRAIN (the fusion's validation documents, out of fold): what a budget is chosen on
            "validation_nDCG@10": trained.config.get("val_first_oof_nDCG@10"),
        }
        db.dispose()
    out["meets_target"] = out["minutes_build_to_trained"] <= TARGET_MINUTES and out["R@10"] >= TARGET_R10
    return out


def render(r: dict) -> str:
    jobs = ", ".join(f"{k} {v} min" for k, v in r["minutes_per_job"].items())
    zero = " / ".join(f"{r[f'zero_shot_{k}']:.3f}" for k in METRICS)
    trained = " / ".join(f"{r[k]:.3f}" for k in METRICS)
    return f"""## A newcomer's first hour (`bench/first_hour.py`)

Command: `{r['command']}` · machine: {r['machine']}

| model | P@1 / P@5 / R@10 / nDCG@10 on {r['test_docs']:,} TEST docs | minutes from pressing Build |
|---|---|---|
| zero-shot (the label index) | {zero} | |
| first trained model (time budget {r['train_budget_min']:g} min) | {trained} | {r['minutes_build_to_trained']} |

- Jobs: {jobs}. Bi-encoder: {r['bi_steps']} of {r['bi_planned_steps']} planned steps ({r['bi_seconds_per_step']:.2f} s each), \
{r['reserved_seconds']:.0f} s reserved for the work after it. Held-out TRAIN nDCG@10 (first stage, out of fold): \
{r['validation_nDCG@10']:.3f}.
- Target: at most {TARGET_MINUTES:g} min and R@10 >= {TARGET_R10}: {'met' if r['meets_target'] else 'missed'}.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--minutes", type=float, default=FIRST_MODEL_MINUTES, help="the training job's time budget")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    out = {**run(args.data, args.minutes), "machine": machine(), "command": command_line("bench.first_hour", argv)}
    publish("first_hour", out, render, not args.no_write)


if __name__ == "__main__":
    main()
