"""Schema migrations with Alembic: a new database starts at the newest revision, an existing one is upgraded by
``xmtc db upgrade`` and is never used while it is behind (no row is lost: each revision says how to move the data).
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

FOLDER = Path(__file__).resolve().parent / "migrations"
FIRST = "0001"  # the schema before migrations existed: a database without a version table that has tables is here
UPGRADE_COMMAND = "xmtc db upgrade"


class SchemaBehind(RuntimeError):
    """The database's schema is older than the code's (or newer): say the one command that fixes it."""


def config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(FOLDER))
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def head() -> str:
    """The newest revision of the migrations folder."""
    return ScriptDirectory.from_config(config()).get_current_head()


def current(engine) -> str | None:
    """The database's revision; ``FIRST`` for a database made before migrations; None for an empty one."""
    with engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
        if revision is None and "users" in inspect(conn).get_table_names():
            return FIRST
        return revision


def upgrade(engine, revision: str = "head") -> tuple[str | None, str]:
    """Upgrade the schema (a database from before migrations is first marked as revision 1). Returns (from, to)."""
    before = current(engine)
    with engine.begin() as conn:
        cfg = config(conn)
        if before == FIRST and MigrationContext.configure(conn).get_current_revision() is None:
            command.stamp(cfg, FIRST)
        command.upgrade(cfg, revision)
    return before, current(engine)


def stamp_head(engine) -> None:
    """Mark a schema just created from the models as the newest revision (what ``alembic stamp head`` writes)."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL, "
                          "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"))
        conn.execute(text("DELETE FROM alembic_version"))
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": head()})


def require_current(engine, url: str) -> None:
    """Raise :class:`SchemaBehind` unless the database is at the code's revision."""
    have, want = current(engine), head()
    if have != want:
        raise SchemaBehind(f"The database {url} is at schema revision {have}, this version of the app needs {want}. "
                           f"Back it up, then run: {UPGRADE_COMMAND}  (with the same XMTC_DATABASE_URL / XMTC_DATA_DIR)")
