"""Annotate: SMEs answer a campaign's yes/no questions (keyboard-friendly); leads steer it and watch progress."""

from __future__ import annotations

import streamlit as st

from core.clock import utcnow
from core.data.catalog import label_detail
from core.errors import XmtcError
from core.evaluation import ratings as rate
from core.model.versions import active_version
from core.newlabels import campaigns as camp
from core.newlabels.views import campaign_curve, document_with_labels, list_campaigns, pooled_labels, split_counts
from ui.common import page_setup, refresh_when, run_action
from ui.widgets import document_view, label_picker, paths_view, plain

db, user, project_id = page_setup("Annotate")

SHORTCUTS = {"yes": "y", "no": "n", "unsure": "u", camp.SKIP: "s"}


def start_campaign_form() -> None:
    pooled = pooled_labels(db, project_id)
    if not pooled:
        st.info("No label has a document pool yet: a campaign asks about a new label's pool. Build the pools on the "
                "Model page (New labels: domain adaptation and document pools), then start the campaign here.")
        return
    with st.form("campaign_form"):
        name = st.text_input("Campaign name")
        labels = label_picker(db, project_id, "New labels (those with a document pool)", among=pooled)
        c = st.columns(5)
        strategy = c[0].selectbox("Strategy", ["greedy", "random"])
        per_fill = c[1].number_input("Questions per fill", 1, 5000, camp.CampaignConfig().questions_per_fill)
        threshold = c[2].number_input("Train after new yes answers", 1, 1000, camp.CampaignConfig().train_after_positives)
        lease = c[3].number_input("Lease (minutes)", 1, 240, camp.CampaignConfig().lease_s // 60)
        overlap = c[4].number_input("SMEs per question", 1, 5, 1, help="2 or more measures inter-annotator agreement")
        if st.form_submit_button("Start the campaign", type="primary"):
            cfg = camp.CampaignConfig(questions_per_fill=int(per_fill), train_after_positives=int(threshold),
                                      lease_s=int(lease) * 60, overlap=int(overlap))
            if run_action(lambda: camp.create_campaign(db, project_id, name, labels, user.id, cfg, strategy),
                          "Campaign started: its first job serves the labels and fills the queue."):
                st.rerun()


def lead_controls(c) -> None:
    cols = st.columns(3)
    target = None
    if c.status == "active" and cols[0].button("Pause", key="camp_pause"):
        target = "paused"
    if c.status == "paused" and cols[0].button("Resume", key="camp_resume"):
        target = "active"
    if cols[1].button("Stop: we are satisfied", key="camp_stop"):
        target = "stopped"
    if target and run_action(lambda: camp.set_status(db, c.id, target, user.id) or True):
        if target == "stopped":
            st.session_state["annotate_flash"] = ("info", "Campaign stopped. Where it was configured to, the "
                                                  "bi-encoder now learns its answers in the background (a job).")
        st.rerun()


def on_answer(item_id: int, value: str) -> None:
    """Button callback: runs before the page re-renders, so the next question comes in the same run."""
    try:
        queued = camp.answer(db, item_id, user.id, value, shown_at=st.session_state.get(f"shown_{item_id}"))
        st.session_state["annotate_flash"] = ("info", "Enough new answers: the model is retraining in the "
                                              "background; keep going.") if queued else None
    except XmtcError as exc:
        st.session_state["annotate_flash"] = ("warning", str(exc))


def on_undo(campaign_id: int) -> None:
    try:
        item = camp.undo_last(db, campaign_id, user.id)
        st.session_state["annotate_flash"] = ("info", "Your last answer was taken back: answer it again." if item
                                              else "There is no answer of yours to undo.")
        if item:
            st.session_state[f"shown_{item}"] = utcnow()
    except XmtcError as exc:
        st.session_state["annotate_flash"] = ("warning", str(exc))


def question_view(c) -> None:
    flash = st.session_state.pop("annotate_flash", None)
    if flash:
        getattr(st, flash[0])(plain(flash[1]))
    q = run_action(lambda: camp.claim_next(db, c.id, user.id))
    if q is None:
        progress = camp.campaign_progress(db, c.id)
        if progress.training and not progress.questions_ever:
            st.info("Preparing the first questions: the first job serves the new labels and ranks their pools "
                    "(about a minute on a CPU). They appear here by themselves.")
        elif progress.training:
            st.info("No question is waiting for you. The model is retraining; new questions appear here by "
                    "themselves when it finishes.")
        else:
            st.info("No question is waiting for you: the others are with other SMEs or answered. New ones appear "
                    "here by themselves.")
        refresh_when(lambda: camp.question_waiting(db, c.id, user.id))
    else:
        st.session_state.setdefault(f"shown_{q.item_id}", utcnow())
        seen_version = st.session_state.get("annotate_version")
        if seen_version is not None and q.model_version_id and q.model_version_id != seen_version:
            st.success("The model was retrained: questions are now ranked by the new version.")
        st.session_state["annotate_version"] = q.model_version_id
        detail = label_detail(db, project_id, q.label_id)
        st.markdown("**Does this document belong to the label?**")
        st.text(f"Label: {q.label}")
        if q.alt_labels:
            st.caption("Also called: " + plain("; ".join(q.alt_labels)))
        if q.description:
            st.caption(plain(q.description))
        if detail is not None and detail.paths:
            with st.expander("Place in the taxonomy", expanded=False):
                paths_view(detail.paths)
        document_view(q.title, q.abstract, q.keywords)
        cols = st.columns(5)
        for col, (value, key) in zip(cols, SHORTCUTS.items(), strict=False):
            col.button(f"{value.capitalize()} ({key.upper()})", key=f"ans_{value}", shortcut=key,
                       type="primary" if value == "yes" else "secondary", on_click=on_answer, args=(q.item_id, value),
                       width="stretch")
    st.button("Undo my last answer (Z)", key="ans_undo", shortcut="z", on_click=on_undo, args=(c.id,))
    st.caption("Keys: Y yes · N no · U unsure · S skip (someone else answers) · Z undo.")


def progress_view(c) -> None:
    progress = camp.campaign_progress(db, c.id)
    cols = st.columns(5)
    for col, key in zip(cols, ("asked", "yes", "no", "unsure"), strict=False):
        col.metric(key.capitalize(), f"{progress.totals[key]:,}")
    cols[4].metric("Waiting in the queue", f"{progress.open_questions:,}")
    if progress.training:
        st.caption("A training iteration is queued or running.")
    st.markdown("**Per label**")
    st.dataframe(progress.labels, hide_index=True, width="stretch")
    if progress.annotators:
        st.markdown("**Per SME**")
        st.dataframe(progress.annotators, hide_index=True, width="stretch")
    curve = campaign_curve(db, c.id)
    measured = [r for r in curve if any(k.endswith("R@10") for k in r)]
    if measured:
        st.markdown("**Recall@10 per iteration** (measured before each iteration learns; new labels on the documents "
                    "SMEs just said yes to and on held-out test documents; old labels on held-out test documents: "
                    "does the model forget?)")
        st.line_chart({k: [r.get(k) for r in measured] for k in ("answered_R@10", "heldout_R@10", "old_R@10")
                       if any(k in r for r in measured)})
    learned = [{k: r[k] for k in ("iteration", "version", "learned", "seconds", "re-ranker")}
               for r in curve if r.get("seconds") is not None]
    if learned:
        st.markdown("**Iterations** (answers learned, seconds of learning, whether the re-ranker trained)")
        st.dataframe(learned, hide_index=True, width="stretch")


def rating_key(task: rate.RatingTask, label_id: int, llm_shown: bool) -> str:
    # A separate widget per mode: with the LLM shown, a label starts at the LLM's score (confirm or correct it).
    return f"rate_{task.document_id}_{label_id}" + ("_llm" if llm_shown else "")


def on_rate(version_id: int, task: rate.RatingTask, llm_shown: bool) -> None:
    values = {lab: st.session_state.get(rating_key(task, lab, llm_shown)) for lab, _ in task.labels}
    try:
        rate.rate_document(db, project_id, version_id, task, user.id, values,
                           rate.seconds_since(st.session_state.get(f"rate_shown_{task.document_id}"), utcnow()), llm_shown)
        message = f"Saved your ratings of document {task.external_id}."
        compared, differ = rate.disagreements(task, values)
        if compared and not llm_shown:  # blind: the LLM's ratings are revealed once the SME has answered
            message += (f" The LLM agreed on {compared - len(differ)} of {compared} labels"
                        + (": " + "; ".join(differ) if differ else "."))
        st.session_state["rate_flash"] = ("success", message)
    except XmtcError as exc:
        st.session_state["rate_flash"] = ("warning", str(exc))


def rating_view() -> None:
    flash = st.session_state.pop("rate_flash", None)
    if flash:
        getattr(st, flash[0])(plain(flash[1]))
    choices = rate.versions_with_predictions(db, project_id)
    if not choices:
        st.info("No model version has predictions for the test split yet. An admin predicts the test split on the "
                "Model page.")
        return
    names = dict(choices)
    active = active_version(db, project_id)
    default = [i for i, _ in choices].index(active.id) if active and active.id in names else 0
    version_id = st.selectbox("Model version to verify", list(names), index=default, format_func=names.get,
                              key="rate_version")
    task = rate.next_to_rate(db, project_id, version_id, user.id)
    if task is None:
        st.info(f"No test document of {names[version_id]} is waiting for your ratings.")
        return
    st.session_state.setdefault(f"rate_shown_{task.document_id}", utcnow())
    st.caption(f"Rate each label {names[version_id]} predicted for this test document: 0 irrelevant, 1 somewhat, "
               "2 highly relevant. Tab moves between labels; arrow keys choose; Enter saves.")
    document_view(task.title, task.abstract, task.keywords)
    show_llm = bool(task.llm) and st.toggle(
        "Show the LLM's ratings (off: rate blind; the LLM's ratings are revealed after you save)", key="rate_show_llm")
    for lab, name in task.labels:
        cols = st.columns([3, 4])
        cols[0].text(name)
        llm = task.llm.get(lab) if show_llm else None
        cols[1].radio(name, list(rate.SCALE), format_func=rate.SCALE.get, index=llm[0] if llm else None,
                      horizontal=True, key=rating_key(task, lab, show_llm), label_visibility="collapsed")
        if llm:
            cols[0].caption(f"LLM: {llm[0]} · {plain(llm[1])}")
    st.button("Save the ratings (Enter)", type="primary", shortcut="Enter", key="rate_save", on_click=on_rate,
              args=(version_id, task, show_llm))


def browse_view() -> None:
    counts = split_counts(db, project_id)
    if not counts:
        st.info("This project has no documents yet: an admin imports a corpus or builds the demo project.")
        return
    cols = st.columns(max(1, len(counts)))
    for col, (split, n) in zip(cols, sorted(counts.items()), strict=False):
        col.metric(f"{plain(split)} documents", f"{n:,}")
    split = st.selectbox("Split", sorted(counts), key="annotate_split")
    position = st.number_input(f"Document (1-{counts[split]:,})", min_value=1, max_value=counts[split], value=1,
                               key="annotate_position")
    doc = document_with_labels(db, project_id, split, int(position) - 1)
    if doc is not None:
        st.caption(f"Document id {plain(doc.external_id)}")
        document_view(doc.title, doc.abstract, doc.keywords)
        st.markdown(f"**Gold labels ({len(doc.labels)})**")
        st.dataframe({"label": [name for name, _ in doc.labels], "source": [src for _, src in doc.labels]},
                     hide_index=True, width="stretch")


view = st.radio("View", ["Answer questions", "Campaign progress", "Rate test documents", "Browse documents"],
                horizontal=True, key="annotate_view", label_visibility="collapsed")
all_campaigns = list_campaigns(db, project_id)
if view == "Browse documents":
    browse_view()
elif view == "Rate test documents":
    rating_view()
elif not all_campaigns:
    st.info("There is no active-learning campaign yet." + ("" if user.is_admin else " A lead starts one."))
    if user.is_admin:
        start_campaign_form()
else:
    by_id = {c.id: c for c in all_campaigns}
    chosen = by_id[st.selectbox("Campaign", list(by_id), format_func=lambda i: by_id[i].title, key="annotate_campaign")]
    if user.is_admin:
        if chosen.status != "stopped":
            lead_controls(chosen)
        with st.expander("Start another campaign"):
            start_campaign_form()
    if view == "Campaign progress":
        progress_view(chosen)
    elif chosen.status == "stopped":
        st.info("This campaign is stopped (the team was satisfied); its answers are kept. Choose another.")
    elif chosen.status == "paused":
        st.info("The lead paused this campaign; questions come back here by themselves when it resumes.")
        refresh_when(lambda: {c.id: c.status for c in list_campaigns(db, project_id)}.get(chosen.id) != "paused")
    else:
        question_view(chosen)
