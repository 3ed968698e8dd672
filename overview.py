"""Overview (the first page): first-run admin account, sign-in, project picker, the project at a glance, admin tools."""

from __future__ import annotations

import streamlit as st

from core.accounts import auth
from core.accounts.projects import add_member, create_project, overview
from core.data.concepts import name_columns
from core.data.demo import FIRST_MODEL_MINUTES
from core.model.versions import list_versions
from core.model.views import metrics_side_by_side
from ui.common import (
    UPLOAD_TYPES,
    api_tokens_panel,
    current_user,
    database,
    job_panel,
    keep_worker_alive,
    run_action,
    save_upload,
    settings,
    sidebar,
    sign_in,
    submit_job,
)
from ui.widgets import plain

db = database()
user = current_user(db)

if user is None:
    st.title("XMTC: keep an extreme multi-label classifier current")
    if not auth.has_users(db):
        st.subheader("First run: create the admin account")
        with st.form("create_admin"):
            username = st.text_input("Admin username")
            password = st.text_input("Password (at least 8 characters)", type="password")
            if st.form_submit_button("Create admin account", type="primary"):
                created = run_action(lambda: auth.create_user(db, username, password, "admin"))
                if created:
                    sign_in(db, created.id)
                    st.rerun()
    else:
        with st.form("sign_in"):
            username = st.text_input("Username")
            password = st.text_input("Password", type="password")
            if st.form_submit_button("Sign in", type="primary"):
                signed = run_action(lambda: auth.authenticate(db, username, password))
                if signed:
                    sign_in(db, signed.id)
                    st.rerun()
    st.stop()

project_id = sidebar(db, user)
keep_worker_alive(db)
st.title("Overview")

if project_id is not None:
    info = overview(db, project_id)
    st.subheader(plain(info.name))
    c = st.columns(3)
    c[0].metric("Documents", f"{info.documents:,}")
    c[1].metric("Labels", f"{info.labels:,}", help=f"{info.labels_deprecated:,} deprecated")
    c[2].metric("Labels in use", f"{info.labels_in_use:,}")
    st.markdown(f"**Taxonomy version:** {plain(info.taxonomy_version or 'none')} · "
                f"**Active model:** {plain(info.model_version or 'none')}")
    if info.documents_by_split:
        st.caption("Documents by split: " + ", ".join(f"{plain(k)}: {v:,}" for k, v in sorted(info.documents_by_split.items()))
                   + f" · {info.assignments:,} gold/weak label assignments")
    measured = metrics_side_by_side(list_versions(db, project_id))
    if measured:
        st.markdown("**Models on the test split**")
        st.dataframe(measured, hide_index=True, width="stretch")
    st.subheader("Jobs")
    job_panel(db, project_id, user)
else:
    st.info("There is no project yet." + (" Create one below, or build the demo project." if user.is_admin else
                                            " Ask an admin to add you to a project."))

with st.expander("Your account"), st.form("change_password", clear_on_submit=True):
    old = st.text_input("Current password", type="password")
    new = st.text_input("New password (at least 8 characters)", type="password")
    if st.form_submit_button("Change the password") and run_action(
            lambda: auth.change_password(db, user.id, old, new) or True):
        st.session_state["signed_out"] = True  # every session of the account ends, this one too
        st.rerun()

if user.is_admin:
    st.divider()
    st.subheader("Administration")
    demo_dir = settings().demo_data_dir
    with st.expander("Demo project (PubMed abstracts + MeSH 2015)", expanded=project_id is None):
        if demo_dir:
            st.write(f"Data folder: `{demo_dir}` (XMTC_DEMO_DATA)")
        else:
            st.write("The public files (8 MB: three PubMed/MeSH CSVs from GitHub jktjia/PubMed-Multilabel-Classifiction "
                     "and MeSH 2015's tree numbers from GitHub dhimmel/mesh, at pinned commits) are downloaded, "
                     f"checked against their SHA-256 and kept in `{settings().demo_cache}`. "
                     "Offline: put them there, or set XMTC_DEMO_DATA to a folder holding them.")
        b = st.columns(2)
        if b[0].button("Build the demo project", key="build_demo"):
            submit_job(db, user, "build_demo", None, {"user_id": user.id})
        if b[1].button("Build the demo project and train a first model (about 15 min on a 2-core CPU)",
                       key="build_demo_train", type="primary"):
            submit_job(db, user, "build_demo", None, {"user_id": user.id, "train_minutes": FIRST_MODEL_MINUTES})
        job_panel(db, None, user, kinds=("build_demo",), limit=3)
    with st.expander("New project"), st.form("new_project"):
        name = st.text_input("Project name")
        description = st.text_area("Description")
        if st.form_submit_button("Create project"):
            new_id = run_action(lambda: create_project(db, name, description, user.id), "Project created.")
            if new_id:
                st.session_state["project_id"] = new_id
                st.rerun()
    if project_id is not None:
        with st.expander(f"Import data into {plain(info.name)}"):
            if not info.labels:
                tax_file = st.file_uploader("Taxonomy (SKOS RDF/XML, Turtle, JSON-LD; MeSH tree TSV; CSV)",
                                            type=UPLOAD_TYPES["taxonomy"], key="tax_upload")
                t = st.columns(2)
                tax_format = t[0].selectbox("Format", ["guess from the name", "skos", "mesh-tree", "csv"], key="tax_fmt")
                columns = t[1].text_input("Name columns of a table (the first non-empty one names a label, the "
                                               "others are alternative names)", "label", key="tax_name_columns")
                if st.button("Import taxonomy", disabled=tax_file is None, key="import_tax"):
                    path = run_action(lambda: save_upload(tax_file, "taxonomy"))
                    if path:
                        submit_job(db, user, "import_taxonomy", project_id, {
                            "path": str(path), "user_id": user.id,
                            "format": None if tax_format.startswith("guess") else tax_format,
                            "label_columns": name_columns(columns)})
            else:
                st.caption(f"Taxonomy {plain(info.taxonomy_version)}: a new version is imported as an update on the "
                           "Taxonomy page.")
            corpus_file = st.file_uploader("Documents (CSV/TSV with a header, JSON Lines, or Annif TSV)",
                                           type=UPLOAD_TYPES["corpus"], key="corpus_upload")
            fmt = st.selectbox("Format", ["csv", "tsv", "jsonl", "annif-tsv"], key="corpus_fmt")
            cols = st.columns(6)
            mapping = {field: cols[i].text_input(f"{field} column", default, key=f"map_{field}") or None
                       for i, (field, default) in enumerate([("id", "id"), ("title", "title"), ("abstract", "abstract"),
                                                             ("keywords", ""), ("labels", "labels"), ("split", "")])}
            skip = st.checkbox("Skip bad rows (listed in the job's report) instead of importing nothing",
                               key="corpus_skip")
            h = st.columns([3, 1])
            hold = h[0].checkbox("If the project has no test split after this import, hold out a share of these "
                                 "documents as the test split (seeded; the report says how many)", value=True,
                                 key="corpus_holdout")
            share = h[1].number_input("Share held out (%)", 1, 90, 20, key="corpus_holdout_share", disabled=not hold)
            as_split = st.text_input("Or import every document into one split (e.g. train, or test for a separate "
                                     "evaluation file; no hold-out then)", "", key="corpus_as_split").strip()
            if not mapping["split"]:
                st.caption("No split column is mapped: without the hold-out, every document is a training document "
                           "and a trained model cannot be evaluated.")
            if st.button("Import documents", disabled=corpus_file is None or not info.labels, key="import_corpus"):
                path = run_action(lambda: save_upload(corpus_file, "corpus"))
                if path:
                    submit_job(db, user, "import_corpus", project_id, {
                        "path": str(path), "format": fmt, "mapping": mapping,
                        "on_error": "skip" if skip else "abort", "user_id": user.id,
                        "holdout": share / 100 if hold and not as_split else 0.0, "split_value": as_split or None})
            job_panel(db, project_id, user, kinds=("import_taxonomy", "import_corpus"), limit=3)
    with st.expander("Users"):
        with st.form("new_user"):
            new_name = st.text_input("Username", key="new_user_name")
            new_password = st.text_input("Password", type="password", key="new_user_password")
            role = st.selectbox("Role", ["annotator", "admin"])
            if st.form_submit_button("Create user"):
                made = run_action(lambda: auth.create_user(db, new_name, new_password, role, user.id), "User created.")
                if made and project_id is not None:
                    run_action(lambda: add_member(db, project_id, made.username, user.id))
        if project_id is not None:
            with st.form("add_member"):
                member = st.text_input("Add an existing user to this project")
                if st.form_submit_button("Add member"):
                    run_action(lambda: add_member(db, project_id, member, user.id), "Member added.")
    with st.expander("API tokens (the REST API for other systems)"):
        api_tokens_panel(db, user)
