"""What the Model page and the Overview show of versions: only the columns that exist, metrics side by side, the
training estimate from measured speed, and a job's ETA."""

from __future__ import annotations

import datetime as dt

import pytest

from core.jobs import JobView, eta_text
from core.model.training import TrainConfig
from core.model.versions import VersionView
from core.model.views import metrics_side_by_side, training_estimate, version_table

T = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)


def version(number: int, kind: str, metrics: dict | None = None, config: dict | None = None, active: bool = False):
    return VersionView(number, number, kind, "/x", config or {}, metrics or {}, T, active)


def test_the_versions_table_leaves_out_columns_no_version_has():
    rows = version_table([version(2, "bicross", {"P@1": 0.9, "R@10": 0.4, "test_docs": 1000}, {"epochs": 1}, True),
                          version(1, "zero_shot")])
    assert list(rows[0]) == ["version", "kind", "active", "created (UTC)", "P@1", "R@10", "test docs", "epochs"]
    assert rows[1]["P@1"] is None and rows[0]["test docs"] == 1000


def test_the_overview_puts_the_newest_trained_model_next_to_the_zero_shot_one():
    rows = metrics_side_by_side([version(3, "bicross", {"R@10": 0.43, "test_docs": 1000}, active=True),
                                 version(2, "bicross", {"R@10": 0.30}), version(1, "zero_shot", {"R@10": 0.18})])
    assert [(r["model"], r["R@10"]) for r in rows] == [("v3 (bicross) (active)", 0.43), ("v1 (zero_shot)", 0.18)]


def test_the_training_estimate_comes_from_the_measured_speed():
    cfg = TrainConfig(train_cross=False)
    assert "No training has been measured" in training_estimate([version(1, "zero_shot")], 18_000, cfg)
    measured = version(2, "bicross", config={"bi.seconds_per_step": 1.5, "batch_size": 32, "max_seq_length": 128})
    # 18,000 pairs / 32 per step x 1.5 s = 844 s: 14 min; twice the batch, half the steps of twice the cost
    assert training_estimate([measured], 18_000, cfg).startswith("About 14 min")
    assert training_estimate([measured], 18_000, TrainConfig(train_cross=False, epochs=2)).startswith("About 28 min")
    assert "the cross-encoder's speed is not measured yet" in training_estimate([measured], 18_000, TrainConfig())
    assert "stops the whole job at about 5 min" in training_estimate([measured], 18_000, TrainConfig(time_budget_min=5))


def test_a_running_job_shows_an_eta_from_its_measured_rate():
    def job(status: str, progress: float) -> JobView:
        return JobView(1, "train_model", status, progress, "", "", {}, 1, T, T, None, False)

    assert job("running", 0.25).eta_s(T + dt.timedelta(minutes=5)) == pytest.approx(15 * 60)  # a quarter in 5 min
    assert job("running", 0.01).eta_s(T + dt.timedelta(minutes=5)) is None  # too early to tell
    assert job("done", 1.0).eta_s(T) is None
    assert (eta_text(40), eta_text(15 * 60), eta_text(2.5 * 3600)) == ("ETA 40 s", "ETA 15 min", "ETA 2.5 h")


def test_the_versions_table_says_what_the_encoders_read_for_a_label_and_why():
    compared = {"label_text": "auto", "label_text_chosen": "name_terms", "label_text_val.name": 0.307,
                "label_text_val.name_terms": 0.373}
    rows = version_table([version(3, "bicross", config=compared), version(2, "bicross", config={"label_text": "name"}),
                          version(1, "bicross", config={"label_text": "auto"})])
    assert [r["label text"] for r in rows] == ["name + records' words (0.373 vs 0.307 on validation)", "name", None]
