"""Model: versions, the label-index job, activation/roll-back and trying the active model."""

from __future__ import annotations

import streamlit as st

from core import versions
from core.catalog import label_detail
from core.ranker import Ranker
from core.tasks import BUILD_LABEL_INDEX
from ui.common import job_panel, page_setup, run_action, settings, submit_job

db, user, project_id = page_setup("Model")


@st.cache_resource(show_spinner="Loading the model...", max_entries=2)
def load_ranker(bundle: str) -> Ranker:
    return Ranker(bundle, settings().device)


all_versions = versions.list_versions(db, project_id)
st.subheader("Versions")
if not all_versions:
    st.info("No model version yet." + (" Build the label index below to serve the pretrained bi-encoder."
                                         if user.is_admin else " An admin builds or trains one."))
else:
    st.dataframe(
        [{"version": f"v{v.number}", "kind": v.kind, "active": "yes" if v.active else "",
          "created (UTC)": v.created_at.strftime("%Y-%m-%d %H:%M"), **v.config, **v.metrics} for v in all_versions],
        hide_index=True, width="stretch",
    )
    if user.is_admin:
        choice = st.selectbox("Version to serve", [v.id for v in all_versions],
                              format_func=lambda i: next(v.name for v in all_versions if v.id == i), key="activate_pick")
        if st.button("Activate (or roll back to) this version", key="activate"):
            run_action(lambda: versions.activate(db, project_id, choice, user.id), "Activated.")
            st.rerun()

if user.is_admin:
    st.subheader("Jobs")
    if st.button("Embed labels and build the label index", key="build_index"):
        submit_job(db, user, BUILD_LABEL_INDEX, project_id, max_attempts=2)
job_panel(db, project_id, user, kinds=(BUILD_LABEL_INDEX,))

st.subheader("Try the active model")
active = next((v for v in all_versions if v.active), None)
if active is None:
    st.caption("There is no active version to try yet.")
else:
    text = st.text_area("Paste a title and abstract", key="try_text", height=150)
    if st.button("Rank labels", key="try_rank") and text.strip():
        ranker = run_action(lambda: load_ranker(active.path))
        preds = run_action(lambda: ranker.rank([text], k=10)[0]) if ranker else None
        if preds:
            rows = []
            for p in preds:
                detail = label_detail(db, project_id, p.label_id)
                rows.append({"label": detail.pref_label if detail else str(p.label_id), "score": round(p.score, 4),
                             "place in the taxonomy": " | ".join(" > ".join(path) for path in detail.paths[:2])
                             if detail else ""})
            st.caption(f"Top-10 labels from {active.name}")
            st.dataframe(rows, hide_index=True, width="stretch")
    elif not text.strip():
        st.caption("Enter some text, then press Rank labels.")
