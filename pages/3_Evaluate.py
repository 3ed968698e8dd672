"""Evaluate: LLM-vs-SME agreement, labels judged correct per version, SME time, AL curves, the judge, exports."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from core.evaluation.jobs import JUDGE_PREDICTIONS
from core.evaluation.judge import DEFAULT_PROMPT, PROMPTS
from core.evaluation.ratings import versions_with_predictions
from core.evaluation.views import (
    OVERALL,
    agreement_by_branch,
    agreement_by_mode,
    al_curves,
    correct_in_top10,
    label_frequency,
    llm_coverage,
    load_ratings,
    rating_pairs,
    ratings_export,
    sme_minutes,
    to_jsonl,
)
from core.model import versions
from ui.common import job_panel, page_setup, settings, submit_job

db, user, project_id = page_setup("Evaluate")
TOP_BRANCHES = 12

data = load_ratings(db, project_id)
predicted = versions_with_predictions(db, project_id)
names = dict(predicted)
llm_rater = (st.selectbox("LLM", data.llm_raters, key="eval_llm") if len(data.llm_raters) > 1
             else next(iter(data.llm_raters), None))
tabs = st.tabs(["LLM vs SME", "Labels judged correct", "SME time", "Active learning", "Judge with an LLM",
                "Test set and versions", "Export"])

with tabs[0]:
    if not data.llm_raters or data.sme.empty:
        st.info("Agreement needs both: LLM ratings (tab 'Judge with an LLM') and SME ratings of the same labels "
                "(Annotate page, 'Rate test documents').")
    else:
        pairs = rating_pairs(data, llm_rater)
        if pairs.empty:
            st.info("No label has both an LLM and an SME rating yet.")
        else:
            rows = agreement_by_branch(pairs, data.branches)
            overall = rows[0]
            c = st.columns(5)
            c[0].metric("Rated pairs", f"{overall.three.n:,}")
            c[1].metric("Agreement, 3-point", f"{100 * overall.three.percent:.1f}%")
            c[2].metric("Cohen's kappa, 3-point", "n/a" if overall.three.kappa is None else f"{overall.three.kappa:.3f}")
            c[3].metric("Agreement, 2-point", f"{100 * overall.two.percent:.1f}%", help="1 and 2 merged into 'relevant'")
            c[4].metric("Cohen's kappa, 2-point", "n/a" if overall.two.kappa is None else f"{overall.two.kappa:.3f}")
            left, right = st.columns(2)
            left.plotly_chart(px.imshow(overall.three.matrix, text_auto=True, color_continuous_scale="Blues",
                                        labels={"x": "SME rating", "y": "LLM rating", "color": "pairs"},
                                        x=["0", "1", "2"], y=["0", "1", "2"], title="Confusion matrix, 3-point"),
                              width="stretch", key="eval_cm3")
            right.plotly_chart(px.imshow(overall.two.matrix, text_auto=True, color_continuous_scale="Blues",
                                         labels={"x": "SME rating", "y": "LLM rating", "color": "pairs"},
                                         x=["irrelevant", "relevant"], y=["irrelevant", "relevant"],
                                         title="Confusion matrix, 2-point"), width="stretch", key="eval_cm2")
            st.markdown("**Blind SME ratings vs ratings made with the LLM's rating in view** (anchoring shows here)")
            st.dataframe([r.as_dict() for r in agreement_by_mode(pairs)], hide_index=True, width="stretch")
            st.markdown(f"**Per top-level branch of the taxonomy** ({len(rows) - 1} branches; a label under several "
                        "branches counts in each)")
            st.dataframe([r.as_dict() for r in rows], hide_index=True, width="stretch")

with tabs[1]:
    if not predicted:
        st.info("No version has test-split predictions yet: predict them on the Model page.")
    else:
        chosen = st.multiselect("Model versions side by side", list(names), default=list(names)[:2],
                                format_func=names.get, key="eval_versions")
        strict = st.toggle("Count only 'highly relevant' (2) as correct", key="eval_strict")
        table = correct_in_top10(db, project_id, data, llm_rater, chosen, threshold=2 if strict else 1)
        if table.empty:
            st.info("None of these versions' top-10 labels has a rating yet.")
        else:
            overall = table[table["branch"] == OVERALL]
            st.markdown("**Labels judged correct in the top-10, per document** (the paper's Table 2)")
            st.dataframe(overall.drop(columns="branch"), hide_index=True, width="stretch")
            top = list(table[table["branch"] != OVERALL].groupby("branch")["labels rated"].sum()
                       .sort_values(ascending=False).index[:TOP_BRANCHES])
            per_branch = table[table["branch"].isin(top)]
            if not per_branch.empty:
                st.plotly_chart(px.bar(per_branch, x="branch", y="share correct", color="version", barmode="group",
                                       facet_row="rater", hover_data=["labels rated", "judged correct", "documents"],
                                       title=f"Share of top-10 labels judged correct, {len(top)} largest branches"),
                                width="stretch", key="eval_table2")
            with st.expander("Every branch"):
                st.dataframe(table, hide_index=True, width="stretch")

with tabs[2]:
    minutes = sme_minutes(data)
    if minutes.empty:
        st.info("No SME has rated a test document yet.")
    else:
        st.markdown("**Median SME minutes per document**, rating blind vs with the LLM's ratings shown")
        cols = st.columns(len(minutes))
        for col, row in zip(cols, minutes.to_dict(orient="records"), strict=True):
            col.metric(row["mode"], f"{row['median minutes']:.2f} min", help=f"{row['documents']} documents")

with tabs[3]:
    curves = al_curves(db, project_id)
    if curves.empty:
        st.info("No active-learning iteration has recorded metrics yet (Annotate page: campaigns).")
    else:
        st.plotly_chart(px.line(curves, x="iteration", y="Recall@10", color="metric", line_dash="campaign", markers=True,
                                range_y=[0, 1],
                                title="Recall@10 per iteration (first stage; measured before each iteration learns)"),
                        width="stretch", key="eval_al")

with tabs[4]:
    cfg = settings()
    st.caption(f"LLM: `{cfg.llm_model or 'not set (XMTC_LLM_MODEL)'}` at `{cfg.llm_base_url or 'OpenAI'}` · API key: "
               f"{'set' if cfg.llm_api_key else 'not set'} (from the environment or .streamlit/secrets.toml; never stored) "
               f"· {cfg.llm_concurrency} requests at once · timeout {cfg.llm_timeout_s:g} s")
    coverage = llm_coverage(db, project_id, cfg.llm_model or None)
    if coverage:
        st.caption("Judgments cached for this model: " + ", ".join(f"{n:,} {k}" for k, n in sorted(coverage.items())))
    if user.is_admin:
        if not predicted:
            st.info("Predict the test split with a version first (Model page).")
        else:
            with st.form("judge_form"):
                chosen = st.multiselect("Versions whose top-10 the LLM judges (the same documents for each)",
                                        list(names), default=list(names)[:2], format_func=names.get)
                n_docs = st.number_input("Test documents", 1, 100_000, 100, step=50)
                if st.form_submit_button("Judge with the LLM", type="primary", disabled=not cfg.llm_model):
                    if chosen:
                        submit_job(db, user, JUDGE_PREDICTIONS, project_id,
                                   {"version_ids": chosen, "max_documents": int(n_docs), "prompt_version": DEFAULT_PROMPT})
                    else:
                        st.error("Choose at least one version.")
            if not cfg.llm_model:
                st.warning("Set XMTC_LLM_MODEL (and XMTC_LLM_BASE_URL for a local OpenAI-compatible server) to judge.")
    else:
        st.caption("An admin starts LLM judging.")
    job_panel(db, project_id, user, kinds=(JUDGE_PREDICTIONS,), limit=3)
    with st.expander(f"Prompt template {DEFAULT_PROMPT}"):
        template = PROMPTS[DEFAULT_PROMPT]
        st.text(f"[system]\n{template.system}\n\n[user]\n{template.document}\n\n{template.topics}\n\n"
                f"[re-ask, for labels left unrated]\n{template.reask}")

with tabs[5]:
    stats = label_frequency(db, project_id)
    c = st.columns(4)
    c[0].metric("Test documents", f"{stats.test_documents:,}")
    c[1].metric("Mean gold labels per document", f"{stats.mean_labels:.1f}")
    c[2].metric("Labels with >= 20 documents", f"{stats.labels_20plus:,}")
    c[3].metric("Labels used once", f"{stats.labels_once:,}")
    if stats.frequencies:
        st.plotly_chart(px.histogram(x=stats.frequencies, nbins=60, log_y=True, title="Label frequency (long tail)",
                                     labels={"x": "documents per label", "y": "labels"}), width="stretch", key="eval_freq")
    rows = [{"version": v.name, "active": "yes" if v.active else "", **v.metrics}
            for v in versions.list_versions(db, project_id)]
    st.markdown("**Model versions** (test metrics recorded when a version is trained)")
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch")
    else:
        st.caption("No model version yet.")

with tabs[6]:
    if data.empty:
        st.caption("No rating to export yet.")
    elif st.toggle("Prepare the export of every rating", key="eval_export"):
        frame = ratings_export(db, project_id)
        c = st.columns(2)
        c[0].download_button("Ratings as CSV", frame.to_csv(index=False), "ratings.csv", "text/csv", key="dl_csv")
        c[1].download_button("Ratings as JSON Lines", to_jsonl(frame), "ratings.jsonl", "application/jsonl",
                             key="dl_jsonl")
        st.caption(f"{len(frame):,} ratings (SME and LLM, with explanations, times and the model version).")
