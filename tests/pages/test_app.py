from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.models import Job
from tests.fakes import job_params, write
from tests.pages.conftest import PAGES, app, signed_in, texts


def test_first_run_creates_the_admin_account_and_signs_in(db):
    at = app().run()
    assert "create the admin account" in texts(at)
    at.text_input[0].input("ada")
    at.text_input[1].input("long enough")
    at.button[0].click().run()
    assert not at.exception
    assert "There is no project yet" in texts(at)
    assert "Administration" in texts(at)


def test_a_short_admin_password_is_refused_with_a_message(db):
    at = app().run()
    at.text_input[0].input("ada")
    at.text_input[1].input("short")
    at.button[0].click().run()
    assert "at least 8 characters" in texts(at)
    assert "user_id" not in at.session_state


def test_sign_in_with_a_wrong_then_right_password(seeded):
    at = app().run()
    at.text_input[0].input("ada")
    at.text_input[1].input("nope nope")
    at.button[0].click().run()
    assert "Wrong username or password" in texts(at)
    at.text_input[1].input("long enough")
    at.button[0].click().run()
    assert at.session_state["user_id"] == seeded["admin"]
    shown = texts(at)
    assert "Cardio" in shown and "Documents 3" in shown and "Labels 5" in shown


def test_overview_shows_the_real_state_and_admin_tools_to_an_admin(seeded):
    at = signed_in("overview.py", seeded["admin"])
    shown = texts(at)
    assert "**Taxonomy version:** v1 · **Active model:** none" in shown
    assert "train: 2" in shown and "test: 1" in shown
    assert "Administration" in shown


def test_an_admin_creates_an_api_token_sees_it_once_and_revokes_it(seeded):
    from core.accounts.tokens import token_projects

    at = signed_in("overview.py", seeded["admin"])
    at.text_input(key="token_name").input("catalogue")
    at.multiselect(key="token_scope").select(seeded["project"])
    next(b for b in at.button if b.label == "Create token").click().run()
    assert not at.exception
    token = at.code[0].value
    assert "Copy it now" in texts(at) and token_projects(seeded["db"], token) == {seeded["project"]}
    assert "catalogue" in texts(at) and "Cardio" in texts(at)
    at.button(key="revoke_token_1").click().run()
    assert "Token #1 revoked" in texts(at) and token_projects(seeded["db"], token) is None
    assert not at.code  # shown once: a rerun does not show it again
    at.multiselect(key="token_scope").set_value([])
    at.text_input(key="token_name").input("no scope")
    next(b for b in at.button if b.label == "Create token").click().run()
    assert "at least one project" in texts(at)


def test_an_annotator_sees_no_admin_actions(seeded):
    at = signed_in("overview.py", seeded["annotator"])
    shown = texts(at)
    assert "Cardio" in shown
    assert "Administration" not in shown
    assert not [b for b in at.button if b.label == "Build the demo project"]


def test_sign_out_returns_to_the_sign_in_form(seeded):
    at = signed_in("overview.py", seeded["admin"])
    next(b for b in at.button if b.label == "Sign out").click().run()
    assert "user_id" not in at.session_state
    assert [b for b in at.button if b.label == "Sign in"]


def test_the_demo_button_queues_a_demo_job(seeded, monkeypatch, tmp_path):
    monkeypatch.setenv("XMTC_DEMO_DATA", str(tmp_path))
    at = signed_in("overview.py", seeded["admin"])
    next(b for b in at.button if b.label == "Build the demo project").click().run()
    with seeded["db"].session() as s:
        assert [j.kind for j in s.query(Job).all()] == ["build_demo"]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_requires_sign_in(db, page):
    at = app(page).run()
    assert not at.exception
    assert "not signed in" in texts(at)


def test_annotate_page_shows_a_document_as_text_with_its_gold_labels(seeded):
    at = signed_in("pages/1_Annotate.py", seeded["annotator"])
    assert "no active-learning campaign yet" in texts(at)
    at.radio(key="annotate_view").set_value("Browse documents").run()
    assert not at.exception
    shown = texts(at)
    assert "train documents 2" in shown and "test documents 1" in shown
    assert "Cardio-oncology" in shown  # the first split, alphabetically: test
    at.selectbox(key="annotate_split").select("train").run()
    assert "Heart attack outcomes" in texts(at)
    labels = at.dataframe[0].value["label"].tolist()
    assert labels == ["Cardiology", "Myocardial Infarction"]


def test_model_page_shows_no_version_yet_and_the_index_button_to_admins(seeded):
    at = signed_in("pages/2_Model.py", seeded["admin"])
    assert not at.exception
    assert "No model version yet" in texts(at)
    next(b for b in at.button if b.label == "Embed labels and build the label index").click().run()
    with seeded["db"].session() as s:
        assert [j.kind for j in s.query(Job).all()] == ["build_label_index"]
    annot = signed_in("pages/2_Model.py", seeded["annotator"])
    assert not [b for b in annot.button if b.label == "Embed labels and build the label index"]
    assert "Train" not in [h.value for h in annot.subheader]


def test_model_page_training_form_queues_a_job_with_the_chosen_options(seeded):
    at = signed_in("pages/2_Model.py", seeded["admin"])
    at.number_input[0].set_value(2)
    at.number_input[2].set_value(96)
    at.checkbox[2].check()
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception
    with seeded["db"].session() as s:
        job = s.query(Job).one()
    assert job.kind == "train_model"
    assert job.params["config"]["epochs"] == 2 and job.params["config"]["max_seq_length"] == 96
    assert job.params["config"]["train_baseline"] is True


def test_model_page_lists_versions_with_their_metrics_side_by_side(seeded, data_dir):
    from core.model.versions import register_version, write_bundle

    db, pid = seeded["db"], seeded["project"]
    for kind, p1 in (("bicross", 0.81), ("baseline", 0.62)):
        bundle = write_bundle(data_dir / "models", pid, kind, lambda folder: {})
        register_version(db, pid, kind, bundle, {"epochs": 1}, {"P@1": p1, "R@10": 0.3}, None, activate=kind == "bicross")
    at = signed_in("pages/2_Model.py", seeded["admin"])
    assert not at.exception
    table = at.dataframe[0].value
    assert table["kind"].tolist() == ["baseline", "bicross"]
    assert table["P@1"].tolist() == [0.62, 0.81]
    assert table["active"].tolist() == ["", "yes"]
    from core.model.versions import active_version, list_versions

    baseline_id = next(v.id for v in list_versions(db, pid) if v.kind == "baseline")
    at.selectbox(key="activate_pick").set_value(baseline_id)
    next(b for b in at.button if b.label.startswith("Activate")).click().run()
    assert active_version(db, pid).kind == "baseline"
    assert at.dataframe[0].value["active"].tolist() == ["yes", ""]
    # Any serving version, the baseline included, can predict the test split (for rating and LLM judging).
    bicross_id = next(v.id for v in list_versions(db, pid) if v.kind == "bicross")
    at.selectbox(key="predict_pick").set_value(bicross_id)
    at.button(key="predict_test").click().run()
    with db.session() as s:
        job = s.scalar(select(Job).where(Job.kind == "predict_documents"))
    assert job_params(job) == {"split": "test", "version_id": bicross_id}


def test_model_page_queues_gpl_and_a_pool_job_for_the_chosen_labels(seeded, data_dir):
    from core.model.versions import register_version, write_bundle

    db, pid = seeded["db"], seeded["project"]
    for kind in ("bicross", "gpl"):
        register_version(db, pid, kind, write_bundle(data_dir / "models", pid, kind, lambda folder: {}), {}, {}, None,
                         activate=kind == "bicross")
    at = signed_in("pages/2_Model.py", seeded["admin"])
    assert at.selectbox(key="activate_pick").options == ["v1 (bicross)"]  # an adapted encoder cannot serve
    next(b for b in at.button if b.label == "Build the pools").click().run()
    assert "Choose at least one label" in texts(at)
    next(b for b in at.button if b.label == "Adapt an encoder (GPL)").click().run()
    from storage.models import Label

    with db.session() as s:
        oncology = s.query(Label).filter_by(project_id=pid, external_id="onc").one().id
    at.multiselect[0].select(oncology)
    next(b for b in at.button if b.label == "Build the pools").click().run()
    assert not at.exception
    with db.session() as s:
        jobs = {j.kind: j.params for j in s.query(Job).all()}
    assert jobs["adapt_encoder"]["generator"] == "title"
    assert {k: v for k, v in jobs["build_pools"].items() if k != "settings"} == {"label_ids": [oncology], "pool_size": 0}


def test_evaluate_page_shows_test_set_statistics(seeded):
    at = signed_in("pages/3_Evaluate.py", seeded["admin"])
    assert not at.exception
    shown = texts(at)
    assert "Test documents 1" in shown
    assert "Mean gold labels per document 1.7" in shown


def test_taxonomy_page_searches_by_alternative_name_and_shows_every_path(seeded):
    at = signed_in("pages/4_Taxonomy.py", seeded["admin"])
    assert "Labels 5" in texts(at)
    at.text_input[0].input("breast cancer").run()
    shown = texts(at)
    assert "Breast Neoplasms" in shown
    assert "Medicine > Cardiology > Breast Neoplasms" in shown
    assert "Medicine > Oncology > Breast Neoplasms" in shown
    assert "Documents carrying it 2" in shown


def test_admin_imports_a_taxonomy_and_documents_through_jobs(db, data_dir, tmp_path):
    from core.accounts import auth
    from core.accounts.projects import create_project, overview
    from core.config import Settings
    from core.jobs import get_job
    from core.worker import WorkerProcess
    from tests.fakes import CORPUS_CSV, TAXONOMY_CSV

    admin = auth.create_user(db, "ada", "long enough", "admin")
    pid = create_project(db, "Fresh", user_id=admin.id)
    at = signed_in("overview.py", admin.id)
    at.session_state["project_id"] = pid
    # AppTest cannot drive st.file_uploader: queue the same jobs the buttons queue, then run them.
    from core.jobs import enqueue

    tax = tmp_path / "tax.csv"
    tax.write_text(TAXONOMY_CSV)
    corpus = tmp_path / "docs.csv"
    corpus.write_text(CORPUS_CSV)
    worker = WorkerProcess(db, Settings.from_env())
    worker.register()
    j1 = enqueue(db, "import_taxonomy", pid, {"path": str(tax)})
    worker.run_one()
    mapping = {"id": "doc_id", "title": "title", "abstract": "abstract", "keywords": None, "labels": "tags",
               "split": "split"}
    j2 = enqueue(db, "import_corpus", pid, {"path": str(corpus), "format": "csv", "mapping": mapping})
    worker.run_one()
    assert get_job(db, j1).status == "done" and get_job(db, j2).status == "done", get_job(db, j2).error
    info = overview(db, pid)
    assert (info.labels, info.documents) == (5, 3)
    at.run()
    assert "Import data into Fresh" in [e.label for e in at.expander]


def test_a_job_whose_worker_died_is_shown_failed_on_the_next_page_view(seeded):
    import datetime as dt

    from core.jobs import claim_next, enqueue, get_job
    from storage.models import Job, utcnow

    db = seeded["db"]
    job_id = enqueue(db, "build_label_index", seeded["project"])
    claim_next(db, "dead-worker", kinds=("build_label_index",))
    with db.session() as s:
        s.get(Job, job_id).heartbeat_at = utcnow() - dt.timedelta(seconds=600)
    at = signed_in("overview.py", seeded["admin"])
    assert get_job(db, job_id).status == "failed"
    assert "stopped responding" in texts(at)


def test_model_page_shows_each_sources_signal_and_contribution_for_a_try_document(seeded, data_dir, encoder_path):
    from core.data.catalog import documents, servable_labels
    from core.model.bicross import make_label_table
    from core.model.encoders import load_bi_encoder
    from core.model.ranker import BiCrossRanker
    from core.model.sparse import SparseBackend, SparseConfig
    from core.model.versions import register_version, write_bundle

    db, pid = seeded["db"], seeded["project"]
    train = [d for d in documents(db, pid) if d.split == "train"]
    gold = [set(d.gold) for d in train]
    ranker = BiCrossRanker.build(load_bi_encoder(encoder_path, "cpu", 64), make_label_table(servable_labels(db, pid), gold))
    ranker.sparse = SparseBackend.fit([d.text for d in train], gold, SparseConfig(cluster_k=2, n_trees=1, min_df=1))
    ranker.fusion.sparse_candidates, ranker.fusion.blend.sparse_weight = 5, 0.5
    bundle = write_bundle(data_dir / "models", pid, "bicross", ranker.save)
    register_version(db, pid, "bicross", bundle, {}, {}, None, activate=True)
    at = signed_in("pages/2_Model.py", seeded["admin"])
    at.text_area(key="try_text").set_value("Breast tumours grew slowly after myocardial infarction.")
    at.button(key="try_rank").click().run()
    assert not at.exception
    # The versions, the top-10, then each source's signal and each source's contribution.
    assert len(at.dataframe) == 4
    signals, contributions = at.dataframe[2].value, at.dataframe[3].value
    assert {"bi-encoder", "label prior", "name in text", "sparse backend"} <= set(signals.columns)
    assert list(signals["label"]) == list(contributions["label"])
    named = signals.set_index("label")
    assert named.loc["Breast Neoplasms", "sparse backend"] > 0  # learned from the training document about tumours
    assert named.loc["Myocardial Infarction", "name in text"] == 1.0
    parts = contributions.set_index("label").loc["Breast Neoplasms"]
    assert parts["sparse backend"] == pytest.approx(0.5 * named.loc["Breast Neoplasms", "sparse backend"], abs=1e-3)


def test_model_page_pool_form_refuses_a_corpus_outside_the_corpus_folders(seeded, data_dir, tmp_path):
    db = seeded["db"]
    secret = write(tmp_path / ".streamlit" / "secrets.toml", 'OPENAI_API_KEY = "sk-do-not-show-me"\n')
    good = write(data_dir / "corpora" / "docs.jsonl", '{"id": "a", "title": "Heart"}\n')
    at = signed_in("pages/2_Model.py", seeded["admin"])
    picker = next(m for m in at.multiselect if m.label == "New labels to build pools for")
    corpus = next(t for t in at.text_input if t.label == "Pool corpus outside the project (optional)")
    picker.set_value(servable_ids(db, seeded["project"])[:1])
    corpus.set_value(str(secret))
    next(b for b in at.button if b.label == "Build the pools").click().run()
    assert "is outside the corpus folders" in texts(at) and "sk-do-not" not in texts(at)
    with db.session() as s:
        assert s.scalar(select(Job).where(Job.kind == "build_pools")) is None
    next(t for t in at.text_input if t.label == "Pool corpus outside the project (optional)").set_value("docs.jsonl")
    next(b for b in at.button if b.label == "Build the pools").click().run()
    with db.session() as s:
        job = s.scalar(select(Job).where(Job.kind == "build_pools"))
    assert job is not None and job.params["corpus"] == str(good.resolve())


def servable_ids(db, project_id):
    from core.data.catalog import servable_labels

    return [lab.id for lab in servable_labels(db, project_id)]
