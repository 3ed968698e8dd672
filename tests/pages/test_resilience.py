"""The pages ride out a database another process holds locked for a few seconds."""

from __future__ import annotations

import sqlite3
import threading
import time

from sqlalchemy import select

from storage.models import Annotation
from tests.pages.conftest import signed_in, texts


def test_the_annotate_page_waits_for_a_locked_database_and_then_answers(campaign):
    db = campaign["db"]
    at = signed_in("pages/1_Annotate.py", campaign["annotator"])
    assert "Does this document belong to the label?" in texts(at)
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        con = sqlite3.connect(db.engine.url.database, timeout=30)
        con.execute("BEGIN EXCLUSIVE")  # another process writing a large transaction, say
        locked.set()
        release.wait(10)
        con.rollback()
        con.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    locked.wait(10)
    threading.Timer(2.0, release.set).start()
    started = time.monotonic()
    next(b for b in at.button if b.label.startswith("Yes")).click().run()
    holder.join()
    assert not at.exception
    assert time.monotonic() - started >= 1.5  # it waited for the lock instead of failing
    assert "Does this document belong to the label?" in texts(at)
    with db.session() as s:
        assert [a.answer for a in s.scalars(select(Annotation))] == ["yes"]
