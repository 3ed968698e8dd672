"""Model: train, watch and cancel jobs, compare versions, activate/roll back, and try the active model."""

from __future__ import annotations

import streamlit as st

from core.data.catalog import label_places, training_pairs
from core.data.corpus import checked_corpus
from core.model import versions
from core.model.labels import LabelRanker
from core.model.loading import load_ranker
from core.model.training import TrainConfig
from core.model.views import explain_rows, training_estimate, version_table
from core.newlabels.gpl import GplConfig
from core.newlabels.jobs import ADAPT_ENCODER, BUILD_POOLS, GENERATORS
from core.tasks import BUILD_LABEL_INDEX, TRAIN_MODEL
from ui.common import job_panel, page_setup, run_action, settings, submit_job
from ui.widgets import label_picker

db, user, project_id = page_setup("Model")


@st.cache_resource(show_spinner="Loading the model...", max_entries=2)
def cached_ranker(bundle: str) -> LabelRanker:
    return load_ranker(bundle, settings().device)


all_versions = versions.list_versions(db, project_id)
st.subheader("Versions")
if not all_versions:
    st.info("No model version yet." + (" Build the label index (zero-shot) or train a model below."
                                         if user.is_admin else " An admin builds or trains one."))
else:
    st.dataframe(version_table(all_versions), hide_index=True, width="stretch")
    st.caption("Metrics are measured on the project's test split when a version is trained. Re-ranker: the documents "
               "the cross-encoder re-ranks, decided on validation documents by the nDCG@10 it adds there (those the "
               "first stage is least sure of, all, or none where it adds nothing: the first stage serves alone).")
    if user.is_admin:
        cols = st.columns([3, 2])
        servable = [v for v in all_versions if v.kind in versions.SERVING_KINDS]
        choice = cols[0].selectbox("Version to serve", [v.id for v in servable], key="activate_pick",
                                   format_func=lambda i: next(v.name for v in servable if v.id == i))
        if cols[1].button("Activate (or roll back to) this version", key="activate") and run_action(
                lambda: versions.activate(db, project_id, choice, user.id) or True):
            st.rerun()

if user.is_admin:
    st.subheader("Train")
    defaults = TrainConfig()
    c = st.columns(5)
    epochs = c[0].number_input("Epochs", 1, 20, defaults.epochs, key="train_epochs")
    batch = c[1].number_input("Batch size", 2, 256, defaults.batch_size, key="train_batch")
    seq = c[2].number_input("Max sequence length", 32, 512, defaults.max_seq_length, step=32, key="train_seq")
    budget = c[3].number_input("Time budget (min, 0: none)", 0, 24 * 60, 0, key="train_budget",
                               help="The whole job (training, fitting, evaluation) aims to end within it: the encoders "
                                    "train as long as it allows, from their measured speed.")
    eval_docs = c[4].number_input("Test documents to evaluate (0: all)", 0, 1_000_000, 0, step=100, key="train_eval")
    p = st.columns(4)
    train_bi = p[0].checkbox("Bi-encoder", value=True, key="train_bi")
    train_cross = p[1].checkbox("Cross-encoder", value=True, key="train_cross")
    train_baseline = p[2].checkbox("Classifier baseline", value=False, key="train_baseline")
    on_gpu = p[3].checkbox("On a GPU worker", value=False, key="train_gpu",
                           help="The job waits for a worker that has a GPU (xmtc worker on a GPU machine, same database "
                                "and store).")
    cfg = TrainConfig(train_bi=train_bi, train_cross=train_cross, train_baseline=train_baseline, epochs=int(epochs),
                      batch_size=int(batch), max_seq_length=int(seq), time_budget_min=float(budget))
    st.caption(training_estimate(all_versions, training_pairs(db, project_id), cfg)
               + " A part left unticked is kept from the active version.")
    if st.button("Start training", type="primary", key="train_start"):
        submit_job(db, user, TRAIN_MODEL, project_id, {"config": cfg.as_dict(), "eval_docs": int(eval_docs),
                                                       **({"needs": ["gpu"]} if on_gpu else {})})
    c = st.columns([2, 2, 2])
    if c[0].button("Embed labels and build the label index", key="build_index"):
        submit_job(db, user, BUILD_LABEL_INDEX, project_id, max_attempts=2)
    rankers = [v for v in all_versions if v.kind in versions.SERVING_KINDS]
    to_predict = c[1].selectbox("Version to predict the test split with (for rating and LLM judging)",
                                [v.id for v in rankers], key="predict_pick", label_visibility="collapsed",
                                index=next((i for i, v in enumerate(rankers) if v.active), 0),
                                format_func=lambda i: next(v.name for v in rankers if v.id == i))
    if c[2].button("Predict the test split with this version", key="predict_test", disabled=not rankers):
        submit_job(db, user, "predict_documents", project_id, {"split": "test", "version_id": to_predict})

    st.subheader("New labels: domain adaptation and document pools")
    with st.form("gpl_form"):
        g = st.columns([2, 3, 1])
        generator = g[0].selectbox("Pseudo-queries from", list(GENERATORS), format_func=GENERATORS.get)
        generator_path = g[1].text_input("Seq2seq checkpoint folder (for a local query generator)")
        gpl_epochs = g[2].number_input("Epochs", 1, 10, GplConfig().epochs)
        st.caption("GPL adapts a separate copy of the pretrained encoder to this corpus (the active model's "
                   "cross-encoder labels the margins); pools are then built with the newest adapted encoder. "
                   "About 11 minutes on the demo corpus on a 2-core CPU.")
        if st.form_submit_button("Adapt an encoder (GPL)"):
            submit_job(db, user, ADAPT_ENCODER, project_id, {"generator": generator, "generator_path": generator_path,
                                                             "config": {"epochs": int(gpl_epochs)}})
    with st.form("pool_form"):
        new = label_picker(db, project_id, "New labels to build pools for")
        size = st.number_input("Documents per pool (0: 1,000, or the whole corpus when smaller)", 0, 100_000, 0)
        corpus = st.text_input("Pool corpus outside the project (optional)", placeholder="/data/corpus/ or corpus.jsonl.gz",
                               help="A JSONL, Parquet or CSV file, or a folder of them, in the corpus folders "
                                    "(XMTC_CORPUS_ROOTS; default: corpora/ in the data folder). It is "
                                    "embedded in shards in the artifact store (by Ray when installed, on a cluster when "
                                    "XMTC_RAY_ADDRESS is set); only the documents that enter a pool are copied into "
                                    "the project. Empty: the project's own documents.")
        if st.form_submit_button("Build the pools"):
            if not new:
                st.error("Choose at least one label.")
            elif not corpus.strip():
                submit_job(db, user, BUILD_POOLS, project_id, {"label_ids": new, "pool_size": int(size)})
            elif checked := run_action(lambda: checked_corpus(corpus.strip(), settings().corpus_folders)):
                submit_job(db, user, BUILD_POOLS, project_id, {"label_ids": new, "pool_size": int(size),
                                                               "corpus": str(checked)})

st.subheader("Jobs")
job_panel(db, project_id, user, kinds=(BUILD_LABEL_INDEX, TRAIN_MODEL, "predict_documents", ADAPT_ENCODER, BUILD_POOLS))

st.subheader("Try the active model")
active = next((v for v in all_versions if v.active), None)
if active is None:
    st.caption("There is no active version to try yet.")
else:
    text = st.text_area("Paste a title and abstract", key="try_text", height=150)
    if st.button("Rank labels", key="try_rank"):
        ranker = run_action(lambda: cached_ranker(active.path))
        preds = run_action(lambda: ranker.rank([text], k=10)[0]) if ranker else None
        if preds:
            places = label_places(db, project_id, [p.label_id for p in preds])
            st.caption(f"Top-10 labels from {active.name}")
            st.dataframe(
                [{"label": places[p.label_id][0], "score": round(p.score, 4), "first stage": round(p.bi_score, 4),
                  "cross-encoder": None if p.cross_score is None else round(p.cross_score, 4),
                  "place in the taxonomy": " | ".join(places[p.label_id][1]) or "(top level)"} for p in preds],
                hide_index=True, width="stretch")
            if hasattr(ranker, "explain"):
                explained = run_action(lambda: explain_rows(ranker, text, places))
                if explained:
                    st.caption("Each source's signal for these labels: cosine of the bi-encoder, the label prior, "
                               "the name found in the text, the sparse backend (TF-IDF + Omikuji), the similar "
                               "training documents, and the cross-encoder's logit.")
                    st.dataframe(explained[0], hide_index=True, width="stretch", key="try_signals")
                    st.caption("What each source added to the score (the learned fusion's SHAP values; the blend's "
                               "weighted terms for a model without a learned fusion).")
                    st.dataframe(explained[1], hide_index=True, width="stretch", key="try_contributions")
