"""Schema migrations: a database of the first release (revision 1) with data upgrades to the newest revision with
every row kept; a database that is behind is refused with the command that upgrades it."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text

from core.cli import main
from storage import migrate
from storage.db import Database


def fill_revision_1(url: str) -> None:
    """Real data through the app's own functions, touching only revision-1 tables."""
    from core.accounts.auth import create_user
    from core.accounts.projects import add_member, create_project
    from core.data.concepts import read_taxonomy
    from core.data.corpus import ColumnMapping, read_csv
    from core.data.imports import import_corpus, import_taxonomy
    from core.data.reports import ImportReport
    from core.jobs import enqueue
    from core.newlabels.campaigns import CampaignConfig, add_questions, answer, claim_next, create_campaign
    from core.newlabels.jobs import store_pools
    from tests.fakes import CORPUS_CSV, TAXONOMY_CSV, empty_version, write

    db = Database(url)
    admin = create_user(db, "ada", "long enough", "admin").id
    sam = create_user(db, "sam", "long enough").id
    pid = create_project(db, "Cardio", user_id=admin)
    add_member(db, pid, "sam", admin)
    folder = __import__("pathlib").Path(url.removeprefix("sqlite:///")).parent
    import_taxonomy(db, pid, read_taxonomy(write(folder / "t.csv", TAXONOMY_CSV)), "v1")
    report = ImportReport()
    import_corpus(db, pid, read_csv(write(folder / "c.csv", CORPUS_CSV), ColumnMapping(id="doc_id", labels="tags",
                                                                                        split="split"), report), report)
    with db.session() as s:
        docs = [r[0] for r in s.execute(text("SELECT id FROM documents ORDER BY id"))]
        onc = s.execute(text("SELECT id FROM labels WHERE external_id = 'onc'")).scalar()
    version = empty_version(db, pid, folder / "models", metrics={"P@1": 0.5}, activate=True)
    store_pools(db, pid, {onc: [(d, 0.5) for d in docs]}, None)
    cid = create_campaign(db, pid, "oncology", [onc], admin, CampaignConfig(train_after_positives=100))
    add_questions(db, cid, [(d, onc) for d in docs], version, 1)
    q = claim_next(db, cid, sam)
    answer(db, q.item_id, sam, "yes")
    enqueue(db, "build_label_index", pid)
    db.dispose()


def snapshot(engine) -> dict[str, list[tuple]]:
    """Every row of every table (but the version table), in a stable order."""
    with engine.connect() as conn:
        names = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
        return {t: sorted(map(tuple, conn.execute(text(f'SELECT * FROM "{t}"')).all()), key=repr) for t in names}


def test_a_first_release_database_with_data_upgrades_to_head_keeping_every_row(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'var' / 'xmtc.db'}"
    engine = create_engine(url)
    (tmp_path / "var").mkdir()
    migrate.upgrade(engine, migrate.FIRST)
    assert migrate.current(engine) == "0001" and "user_sessions" not in inspect(engine).get_table_names()
    fill_revision_1(url)
    before = snapshot(engine)
    assert sum(map(len, before.values())) > 40 and all(before[t] for t in ("users", "documents", "annotations", "jobs"))

    db = Database(url)
    with pytest.raises(migrate.SchemaBehind, match=rf"revision 0001, this version of the app needs {migrate.head()}.*xmtc db upgrade"):
        db.prepare()  # what the app and the worker do first: a database behind is refused, not changed
    assert snapshot(engine) == before

    monkeypatch.setenv("XMTC_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("XMTC_DATABASE_URL", raising=False)
    assert main(["db", "upgrade"]) == 0
    assert f"schema revision 0001 -> {migrate.head()}" in capsys.readouterr().out
    after = snapshot(engine)
    assert {t: after[t] for t in before} == before  # every row of every table, unchanged
    assert after["user_sessions"] == [] and after["undone_answers"] == []
    db.prepare()  # now current
    from core.accounts.auth import session_user, start_session

    token, _ = start_session(db, 1)
    assert session_user(db, token).username == "ada"


def test_a_database_from_before_migrations_is_taken_as_revision_1(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(engine, migrate.FIRST)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))  # as create_all() of the first release left it
    assert migrate.current(engine) == migrate.FIRST
    assert migrate.upgrade(engine) == ("0001", migrate.head())


def test_a_new_database_starts_at_the_newest_revision_and_matches_the_models(tmp_path):
    made = Database(f"sqlite:///{tmp_path / 'new.db'}")
    made.prepare()
    assert migrate.current(made.engine) == migrate.head()
    migrated = create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    migrate.upgrade(migrated)
    columns = {t: sorted((c["name"], str(c["type"]), c["nullable"]) for c in inspect(e).get_columns(t))
               for e in (made.engine,) for t in inspect(e).get_table_names()}
    assert columns == {t: sorted((c["name"], str(c["type"]), c["nullable"]) for c in inspect(migrated).get_columns(t))
                       for t in inspect(migrated).get_table_names()}
