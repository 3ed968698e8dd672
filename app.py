"""Entry page: first-run admin account, sign-in, project picker and project overview."""

from __future__ import annotations

import streamlit as st

from core import auth
from core.projects import add_member, create_project, overview
from ui.common import (
    UPLOAD_TYPES,
    current_user,
    database,
    job_panel,
    keep_worker_alive,
    run_action,
    save_upload,
    settings,
    sidebar,
    submit_job,
)
from ui.widgets import plain

st.set_page_config(page_title="XMTC - keep a classifier current", layout="wide")
db = database()
user = current_user(db)

if user is None:
    st.session_state.pop("signed_out", None)
    st.title("XMTC: keep an extreme multi-label classifier current")
    if not auth.has_users(db):
        st.subheader("First run: create the admin account")
        with st.form("create_admin"):
            username = st.text_input("Admin username")
            password = st.text_input("Password (at least 8 characters)", type="password")
            if st.form_submit_button("Create admin account", type="primary"):
                created = run_action(lambda: auth.create_user(db, username, password, "admin"))
                if created:
                    st.session_state["user_id"] = created.id
                    st.rerun()
    else:
        with st.form("sign_in"):
            username = st.text_input("Username")
            password = st.text_input("Password", type="password")
            if st.form_submit_button("Sign in", type="primary"):
                signed = run_action(lambda: auth.authenticate(db, username, password))
                if signed:
                    st.session_state["user_id"] = signed.id
                    st.rerun()
    st.stop()

project_id = sidebar(db, user)
keep_worker_alive(db)
st.title("Overview")

if project_id is not None:
    info = overview(db, project_id)
    st.subheader(plain(info.name))
    c = st.columns(5)
    c[0].metric("Documents", f"{info.documents:,}")
    c[1].metric("Labels", f"{info.labels:,}", help=f"{info.labels_deprecated:,} deprecated")
    c[2].metric("Labels in use", f"{info.labels_in_use:,}")
    c[3].metric("Taxonomy version", info.taxonomy_version or "none")
    c[4].metric("Active model", info.model_version or "none")
    if info.documents_by_split:
        st.caption("Documents by split: " + ", ".join(f"{k}: {v:,}" for k, v in sorted(info.documents_by_split.items()))
                   + f" · {info.assignments:,} gold/weak label assignments")
    st.subheader("Jobs")
    job_panel(db, project_id, user)
else:
    st.info("There is no project yet." + (" Create one below, or build the demo project." if user.is_admin else
                                            " Ask an admin to add you to a project."))

if user.is_admin:
    st.divider()
    st.subheader("Administration")
    demo_dir = settings().demo_data_dir
    with st.expander("Demo project (PubMed abstracts + MeSH 2015)", expanded=project_id is None):
        st.write(f"Data folder: `{demo_dir or 'not found: set XMTC_DEMO_DATA'}`")
        if st.button("Build the demo project", disabled=demo_dir is None, key="build_demo"):
            submit_job(db, user, "build_demo", None, {"user_id": user.id})
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
                tax_format = st.selectbox("Format", ["guess from the name", "skos", "mesh-tree", "csv"], key="tax_fmt")
                if st.button("Import taxonomy", disabled=tax_file is None, key="import_tax"):
                    path = run_action(lambda: save_upload(tax_file, "taxonomy"))
                    if path:
                        submit_job(db, user, "import_taxonomy", project_id, {
                            "path": str(path), "user_id": user.id,
                            "format": None if tax_format.startswith("guess") else tax_format})
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
            if st.button("Import documents", disabled=corpus_file is None or not info.labels, key="import_corpus"):
                path = run_action(lambda: save_upload(corpus_file, "corpus"))
                if path:
                    submit_job(db, user, "import_corpus", project_id, {
                        "path": str(path), "format": fmt, "mapping": mapping,
                        "on_error": "skip" if skip else "abort", "user_id": user.id})
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
