"""Taxonomy: browse and search the poly-hierarchy, update to a new version (diff first), edit labels, export."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.accounts.projects import overview
from core.data.catalog import children_of, label_detail, label_recall, search_labels
from core.data.imports import label_lookup
from core.errors import XmtcError
from core.evaluation.views import to_jsonl
from core.jobs import list_jobs
from core.model.versions import active_version
from core.newlabels.jobs import BUILD_POOLS
from core.taxonomy import exports
from core.taxonomy import update as tu
from ui.common import UPLOAD_TYPES, job_panel, page_setup, run_action, save_upload, submit_job
from ui.widgets import paths_view, plain

db, user, project_id = page_setup("Taxonomy")
CHILDREN_SHOWN = 60

info = overview(db, project_id)
header = st.container()  # filled at the end of the run, so that it counts an edit made below
if not info.labels:
    st.info("This project has no taxonomy yet: an admin imports one (or builds the demo project) on the start page.")
    st.stop()


def go(label_id: int | None) -> None:
    st.session_state["tax_label"] = label_id


def names_to_ids(text: str) -> list[int]:
    """Labels named one per line (id, preferred or alternative name) -> row ids; unknown ones are an error."""
    wanted = [t.strip() for t in text.replace(";", "\n").splitlines() if t.strip()]
    lookup = label_lookup(db, project_id)
    unknown = [w for w in wanted if w not in lookup]
    if unknown:
        raise XmtcError(f"Unknown label(s): {', '.join(unknown[:5])}. Give ids or exact names.")
    return [lookup[w] for w in wanted]


def label_view(label_id: int) -> None:
    detail = label_detail(db, project_id, label_id)
    if detail is None:
        st.warning("This label is not in the project.")
        return
    st.subheader(plain(detail.pref_label))
    st.caption(plain(f"id {detail.external_id} · {detail.status}"
                     + (f" · in campaign(s) {', '.join(detail.campaigns)}" if detail.campaigns else "")))
    if detail.alt_labels:
        st.text("Also called: " + "; ".join(detail.alt_labels))
    if detail.description:
        st.text(detail.description)
    st.markdown(f"**Places in the hierarchy ({len(detail.paths)})**")
    paths_view(detail.paths)
    broader = {ids[-2]: names[-2] for ids, names in zip(detail.path_ids, detail.paths, strict=True) if len(ids) > 1}
    if broader:
        cols = st.columns(min(4, len(broader)))
        for n, (i, name) in enumerate(sorted(broader.items(), key=lambda kv: kv[1])):
            cols[n % len(cols)].button(f"Broader: {plain(name)}", key=f"up_{i}", on_click=go, args=(i,), width="stretch")
    active = active_version(db, project_id)
    m = st.columns(2)
    m[0].metric("Documents carrying it", f"{detail.documents:,}")
    if active is not None:
        predicted, hits = label_recall(db, label_id, active.id)
        m[1].metric(f"Recall@10 of {active.name} on its documents", f"{hits / predicted:.2f}" if predicted else "n/a",
                    help=f"{hits} of {predicted} of its documents with predictions have it in the top 10"
                    if predicted else "Predict the test split (Model page) to measure it")


tabs = st.tabs(["Browse and search", "Update to a new version", "Edit", "Export"])

with tabs[0]:
    # Type-ahead: the search runs a quarter second after typing stops (server-side, over all names and ids).
    query = st.text_input("Search labels (name, alternative name or id)", key="taxonomy_search", live=True,
                          type="search", placeholder="Start typing a label name")
    if query:
        hits = search_labels(db, project_id, query)
        if not hits:
            st.caption(plain(f"No label matches {query!r}."))
        else:
            names = {h[0]: f"{h[2]}  [{h[1]}]" for h in hits}
            chosen = st.selectbox(f"{len(hits)} match(es), best first", list(names), format_func=names.get,
                                  key="taxonomy_pick")
            if chosen != st.session_state.get("tax_picked"):  # a new choice in the list opens that label
                st.session_state["tax_picked"] = chosen
                go(chosen)
    current = st.session_state.get("tax_label")
    if current is not None:
        st.button("Back to the top level", key="tax_top", on_click=go, args=(None,))
        label_view(current)
    more_key = f"tax_shown_{current}"
    shown = st.session_state.get(more_key, CHILDREN_SHOWN)
    children, total = children_of(db, project_id, current, shown)
    st.markdown(f"**{'Narrower labels' if current is not None else 'Top-level labels'} ({total:,})**"
                + (f", the first {len(children):,} by name" if total > len(children) else ""))
    cols = st.columns(3)
    for n, (i, name, below) in enumerate(children):
        cols[n % 3].button(plain(f"{name} ({below})" if below else name), key=f"child_{i}", on_click=go, args=(i,),
                           width="stretch")
    if total > len(children):
        st.button(f"Show {min(CHILDREN_SHOWN, total - len(children)):,} more of {total - len(children):,}",
                  key="tax_more", on_click=lambda: st.session_state.update({more_key: shown + CHILDREN_SHOWN}))

with tabs[1]:
    if not user.is_admin:
        st.caption("An admin imports new taxonomy versions.")
    else:
        st.caption("Upload the new release (same formats as the first import). Its differences to the current "
                   "taxonomy are shown first; nothing changes until you apply it.")
        with st.form("update_form"):
            upload = st.file_uploader("New taxonomy version", type=UPLOAD_TYPES["taxonomy"], key="tax_update_file")
            fmt = st.selectbox("Format", ["guess from the name", "skos", "mesh-tree", "csv"], key="tax_update_fmt")
            version_name = st.text_input("Name of the new version (e.g. PhySH 2.7)", key="tax_update_name")
            if st.form_submit_button("Compare with the current taxonomy", type="primary"):
                if upload is None or not version_name.strip():
                    st.error("Choose a file and name the new version.")
                else:
                    path = run_action(lambda: save_upload(upload, "taxonomy"))
                    if path:
                        submit_job(db, user, tu.PREVIEW_UPDATE, project_id, {
                            "path": str(path), "version_name": version_name.strip(),
                            "format": None if fmt.startswith("guess") else fmt})
        preview = next(iter(list_jobs(db, project_id, limit=1, kinds=(tu.PREVIEW_UPDATE,))), None)
        if preview is not None and preview.status == "done":
            r = preview.result
            st.markdown(f"**Differences of {plain(repr(r['version_name']))} ({r['concepts']:,} concepts) to the current "
                        "taxonomy**")
            cols = st.columns(len(r["counts"]))
            for col, (kind, n) in zip(cols, r["counts"].items(), strict=True):
                col.metric(kind, f"{n:,}")
            for kind, rows in r["diff"].items():
                if rows:
                    with st.expander(f"{kind} ({len(rows):,})"):
                        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
            for blocker in r["blockers"]:
                st.error(plain(f"Cannot apply yet: {blocker}. Stop that campaign (Annotate page) first."))
            applied = any(j.id > preview.id and j.status in ("queued", "running", "done")  # this preview, applied
                          for j in list_jobs(db, project_id, limit=3, kinds=(tu.APPLY_UPDATE,)))
            if st.button(f"Apply {plain(r['version_name'])}", type="primary", key="tax_apply",
                         disabled=bool(r["blockers"]) or not any(r["counts"].values()) or applied):
                submit_job(db, user, tu.APPLY_UPDATE, project_id, {
                    "path": r["path"], "format": r["format"], "version_name": r["version_name"], "digest": r["digest"],
                    "user_id": user.id})
        done = next(iter(list_jobs(db, project_id, limit=1, kinds=(tu.APPLY_UPDATE,))), None)
        if done is not None and done.status == "done" and done.result.get("added_label_ids"):
            added = done.result["added_label_ids"]
            st.success(f"{len(added)} added label(s) are served now. Teach the model about them with active learning: "
                       "build their document pools, then start a campaign on the Annotate page.")
            if st.button(f"Build the document pools of the {len(added)} added labels", key="tax_pools"):
                submit_job(db, user, BUILD_POOLS, project_id, {"label_ids": added, "pool_size": 0})
        job_panel(db, project_id, user, kinds=(tu.PREVIEW_UPDATE, tu.APPLY_UPDATE, tu.SERVE_CHANGES, BUILD_POOLS),
                  limit=4)

with tabs[2]:
    if not user.is_admin:
        st.caption("An admin adds, deprecates and removes labels.")
    else:
        with st.form("add_label_form", clear_on_submit=True):
            st.markdown("**Add a label** (served at once, without retraining)")
            name = st.text_input("Preferred name")
            alts = st.text_area("Alternative names (one per line)", height=80)
            description = st.text_area("Description", height=80)
            parents = st.text_area("Parents: ids or exact names, one per line (empty: a top-level label)", height=80,
                                   value="")
            if st.form_submit_button("Add the label", type="primary"):
                def add() -> int:
                    new = tu.add_label(db, project_id, name, alts.splitlines(), description, names_to_ids(parents),
                                       user.id)
                    tu.queue_serving(db, project_id, add=[new], user_id=user.id)
                    return new
                if (new := run_action(add, f"Added {name.strip()!r}; the model embeds it in the background.")):
                    go(new)
        current = st.session_state.get("tax_label")
        if current is None:
            st.caption("Open a label (Browse and search) to deprecate or remove it.")
        else:
            detail = label_detail(db, project_id, current)
            with st.form("retire_form"):
                st.markdown(f"**Retire {plain(repr(detail.pref_label))}** (kept in history; no longer predicted)")
                how = st.radio("How", ["deprecate", "remove"], horizontal=True)
                replacement = st.text_input("Replaced by (id or exact name, optional)")
                if st.form_submit_button("Retire the label"):
                    def retire() -> bool:
                        replaced = names_to_ids(replacement)[0] if replacement.strip() else None
                        tu.retire_label(db, project_id, current, how, user.id, replaced)
                        tu.queue_serving(db, project_id, remove=[current], user_id=user.id)
                        return True
                    run_action(retire, f"{detail.pref_label!r} {how}d; the model drops it in the background.")
        job_panel(db, project_id, user, kinds=(tu.SERVE_CHANGES,), limit=3)

with tabs[3]:
    active = active_version(db, project_id)
    st.caption("Files are generated when you click.")
    c = st.columns(2)
    c[0].download_button("Taxonomy as SKOS (Turtle)", lambda: exports.taxonomy_turtle(db, project_id, info.name),
                         "taxonomy.ttl", "text/turtle", key="dl_ttl", on_click="ignore")
    c[1].download_button("Taxonomy as CSV", lambda: exports.taxonomy_csv(db, project_id), "taxonomy.csv", "text/csv",
                         key="dl_tax_csv", on_click="ignore")
    st.markdown("**Labels of the documents**: gold" + (f" and the predictions of {active.name}" if active else ""))
    version_id = active.id if active else None
    c = st.columns(3)
    c[0].download_button("CSV", lambda: exports.document_labels(db, project_id, version_id).to_csv(index=False),
                         "document_labels.csv", "text/csv", key="dl_doc_csv", on_click="ignore")
    c[1].download_button("JSON Lines", lambda: to_jsonl(exports.document_labels(db, project_id, version_id)),
                         "document_labels.jsonl", "application/jsonl", key="dl_doc_jsonl", on_click="ignore")
    c[2].download_button("Annif TSV corpus (gold)", lambda: exports.annif_tsv(db, project_id), "corpus.tsv",
                         "text/tab-separated-values", key="dl_annif", on_click="ignore")

with header:  # after any edit above: the counts include it
    now = overview(db, project_id)
    c = st.columns(3)
    c[0].metric("Labels", f"{now.labels:,}")
    c[1].metric("Deprecated", f"{now.labels_deprecated:,}")
    c[2].metric("Labels in use", f"{now.labels_in_use:,}")
    st.markdown(f"**Version:** {plain(now.taxonomy_version or 'none')}")
