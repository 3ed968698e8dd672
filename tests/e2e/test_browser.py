"""One real-browser flow: Debian's Chromium (Playwright) against ``streamlit run app.py``."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from storage.db import Database
from storage.models import Annotation

pytestmark = pytest.mark.e2e


def answers(data_dir) -> list[tuple[int, str]]:
    db = Database(f"sqlite:///{data_dir / 'xmtc.db'}")
    try:
        with db.session() as s:
            return [(a.document_id, a.answer) for a in s.scalars(select(Annotation).order_by(Annotation.id))]
    finally:
        db.dispose()


TITLES = ("Heart attack outcomes", "Tumour growth", "Cardio-oncology")  # the seeded corpus (tests/fakes.py)
A_TITLE = re.compile("^(" + "|".join(map(re.escape, TITLES)) + ")$")


def question(page) -> str:
    """The title of the document asked about on screen (it changes when the next question comes)."""
    page.get_by_text("Does this document belong to the label?").wait_for()
    # Streamlit draws a page element by element: wait for the title itself, not only the prompt above it
    title = page.locator("[data-testid='stText']").filter(has_text=A_TITLE)
    title.first.wait_for()
    assert title.count() == 1, title.all_inner_texts()
    return title.first.inner_text().strip()


def test_sign_in_answer_with_the_keyboard_undo_and_see_every_page(app_server, page):
    url, data_dir, _ = app_server
    page.goto(url)
    page.get_by_role("textbox", name="Username").fill("ada")
    page.get_by_role("textbox", name="Password").fill("long enough")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Cardio demo").first.wait_for()
    page.get_by_role("heading", name="Overview").wait_for()

    nav = page.get_by_test_id("stSidebarNav")  # in-app navigation keeps the session (a reload signs out)
    nav.get_by_role("link", name="Annotate").click()
    first = question(page)
    page.get_by_text("Keys: Y yes").wait_for()
    page.locator("body").press("y")
    page.get_by_text(TITLES[1], exact=True).wait_for()
    second = question(page)
    assert second != first
    assert answers(data_dir)[-1][1] == "yes"
    page.locator("body").press("z")  # undo: the first question comes back
    page.get_by_text("Your last answer was taken back").wait_for()
    page.get_by_text(first, exact=True).wait_for()
    assert question(page) == first and answers(data_dir) == []
    page.locator("body").press("n")
    page.get_by_text(TITLES[1], exact=True).wait_for()
    assert [a for _, a in answers(data_dir)] == ["no"]

    nav.get_by_role("link", name="Model").click()
    page.get_by_role("heading", name="Versions").wait_for()
    page.get_by_role("heading", name="Try the active model").wait_for()
    page.get_by_test_id("stDataFrame").first.wait_for()  # the versions table
    nav.get_by_role("link", name="Evaluate").click()
    page.get_by_role("tab", name="LLM vs SME").wait_for()
    assert "Traceback" not in page.content()
    nav.get_by_role("link", name="Taxonomy").click()
    page.get_by_placeholder("Start typing a label name").type("heart att")  # type-ahead: no Enter pressed
    page.get_by_role("heading", name="Myocardial Infarction").wait_for()  # found by its alternative name
    page.get_by_text("Medicine > Cardiology > Myocardial Infarction").wait_for()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
