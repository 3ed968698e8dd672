"""Engine and session factory: SQLite with WAL, foreign keys and a busy timeout."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from storage.models import Base

BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout on every connection.

    Args:
        url: any SQLAlchemy URL, e.g. ``sqlite:///var/xmtc.db`` or ``postgresql+psycopg://...``.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Database:
    """One database: an engine, its session factory and schema creation."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    def create_all(self) -> None:
        """A new database: create the tables from the models, marked as the newest schema revision. An existing
        database is left as it is (see :meth:`prepare`)."""
        from storage import migrate

        if migrate.current(self.engine) is None:
            Base.metadata.create_all(self.engine)
            migrate.stamp_head(self.engine)

    def prepare(self) -> None:
        """What the app, the worker and the command line call first: create a new database, and refuse (with the
        command that upgrades it) a database whose schema is behind the code's.

        Raises:
            storage.migrate.SchemaBehind: the database needs ``xmtc db upgrade``.
        """
        from storage import migrate

        self.create_all()
        migrate.require_current(self.engine, self.engine.url.render_as_string(hide_password=True))

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error."""
        with self.sessionmaker() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
