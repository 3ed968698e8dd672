"""Evaluate page with seeded ratings: agreement, labels judged correct, SME time, AL curves, the judge, exports."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from core.model.labels import Prediction
from core.model.predictions import store_predictions
from storage.models import Document, Job, Label
from tests.fakes import empty_version, seed_ratings
from tests.pages.conftest import signed_in, texts


@pytest.fixture
def rated(seeded, data_dir):
    db, pid = seeded["db"], seeded["project"]
    with db.session() as s:
        s.execute(update(Document).values(split="test"))
        docs = list(s.scalars(select(Document.id).order_by(Document.id)))
        labels = {lab.external_id: lab.id for lab in s.scalars(select(Label))}
    version = empty_version(db, pid, data_dir / "models", activate=True)
    baseline = empty_version(db, pid, data_dir / "models", "baseline")
    store_predictions(db, version, docs[:2], [[Prediction(labels["mi"], 0.9, 0.9), Prediction(labels["card"], 0.8, 0.8)],
                                              [Prediction(labels["bc"], 0.9, 0.9)]])
    store_predictions(db, baseline, docs[:2], [[Prediction(labels["card"], 0.9, 0.9)], [Prediction(labels["med"], 0.9, 0.9)]])
    seed_ratings(db, pid, labels, docs, [seeded["admin"], seeded["annotator"]], version, baseline)
    return {**seeded, "version": version, "baseline": baseline}


def test_the_page_shows_agreement_table_2_and_sme_time(rated, monkeypatch):
    monkeypatch.setenv("XMTC_LLM_API_KEY", "sk-secret-never-shown")
    at = signed_in("pages/3_Evaluate.py", rated["admin"])
    assert not at.exception
    shown = texts(at)
    assert "Rated pairs 4" in shown
    assert "Agreement, 3-point 50.0%" in shown and "Agreement, 2-point 100.0%" in shown
    assert "Cohen's kappa, 2-point 1.000" in shown  # 1 and 2 merged: the pairs all agree
    agreement = at.dataframe[1].value  # per branch
    assert list(agreement["branch"]) == ["(all)", "Medicine"] and list(agreement["pairs"]) == [4, 4]
    table2 = at.dataframe[2].value.set_index(["version", "rater"])
    assert table2.loc[("v1 (bicross)", "LLM"), "judged correct"] == 2
    assert table2.loc[("v2 (baseline)", "LLM"), "judged correct"] == 1
    assert "without the LLM (blind) 2.00 min" in shown and "with the LLM's ratings 0.75 min" in shown
    assert "API key: set" in shown and "sk-secret-never-shown" not in shown
    assert "Set XMTC_LLM_MODEL" in shown
    assert "Prompt template judge-v1" in [e.label for e in at.expander]  # the versioned prompt is visible
    assert "Score each topic 0 (irrelevant)" in shown


def test_an_admin_starts_llm_judging_of_two_versions(rated, monkeypatch):
    monkeypatch.setenv("XMTC_LLM_MODEL", "judge")
    monkeypatch.setenv("XMTC_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    at = signed_in("pages/3_Evaluate.py", rated["admin"])
    at.number_input[0].set_value(50)
    next(b for b in at.button if b.label == "Judge with the LLM").click().run()
    assert not at.exception
    with rated["db"].session() as s:
        job = s.scalar(select(Job).where(Job.kind == "judge_predictions"))
    assert job.params["version_ids"] == [rated["baseline"], rated["version"]] and job.params["max_documents"] == 50


def test_an_annotator_cannot_start_judging_and_the_page_renders_without_ratings(seeded):
    at = signed_in("pages/3_Evaluate.py", seeded["annotator"])
    assert not at.exception
    shown = texts(at)
    assert "An admin starts LLM judging." in shown
    assert not [b for b in at.button if b.label == "Judge with the LLM"]
    assert "Agreement needs both" in shown


def test_active_learning_curves_are_plotted_from_the_campaign_versions(rated, data_dir):
    from core.newlabels.views import campaign_curve
    from storage.models import Campaign

    db, pid = rated["db"], rated["project"]
    with db.session() as s:
        c = Campaign(project_id=pid, name="c1")
        s.add(c)
        s.flush()
        cid = c.id
    learned = [{}, {"learned": 150, "seconds.labels": 0.5, "seconds.sparse": 5.0, "seconds.check": 1.5,
                    "cross_check.earns": False, "cross_check.cross_auc": 0.61, "cross_check.first_auc": 0.74}]
    for it, (new, old) in enumerate([(0.1, 0.4), (0.3, 0.42)], start=1):
        empty_version(db, pid, data_dir / "models", config={"campaign_id": cid, "iteration": it, **learned[it - 1]},
                      metrics={"heldout_R@10": new, "old_R@10": old})
    curve = campaign_curve(db, cid)
    assert [p["iteration"] for p in curve] == [1, 2]
    assert curve[0]["seconds"] is None and curve[1]["seconds"] == 7.0 and curve[1]["learned"] == 150
    assert curve[1]["re-ranker"] == ("not trained: it did not beat the first stage on the fresh answers "
                                     "(AUC 0.61 vs 0.74)")
    at = signed_in("pages/3_Evaluate.py", rated["admin"])
    assert not at.exception
    assert "No active-learning iteration" not in texts(at)
    specs = " ".join(c.proto.spec for c in at.get("plotly_chart"))
    assert "old labels, held-out" in specs and "new labels, held-out" in specs
    assert '"range":[0,1]' in specs.replace(" ", "")  # Recall never runs below 0 (was -0.5 with one point)
