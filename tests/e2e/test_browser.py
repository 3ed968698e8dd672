"""One real-browser flow: Debian's Chromium (Playwright) against ``streamlit run app.py``."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from storage.db import Database
from storage.models import Annotation
from tests.fakes import process_gone

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


def session_cookie(page, timeout_s: float = 15) -> dict:
    """Wait until the browser holds the sign-in cookie (written by a component just after sign-in; until then a
    click may race with the rerun it triggers)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [c for c in page.context.cookies() if c["name"] == "xmtc_session"]
        if found:
            return found[0]
        page.wait_for_timeout(200)
    raise AssertionError("the sign-in cookie was never written")


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
    cookie = session_cookie(page)
    assert cookie["sameSite"] == "Strict" and len(cookie["value"]) >= 40  # a random token, never in the URL
    page.wait_for_timeout(500)  # the rerun the cookie component triggers

    nav = page.get_by_test_id("stSidebarNav")
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


def choose(page, widget: str, label: str) -> None:
    """Pick ``label`` in the label multiselect titled ``widget``: type to filter, click the option."""
    box = page.locator("[data-testid='stMultiSelect']").filter(has_text=widget).locator("input")
    box.click()
    box.press_sequentially(label, delay=30)  # typed, as a user does: the list filters as it goes
    page.get_by_role("option", name=re.compile("^" + re.escape(label) + r" \(")).first.click()
    page.keyboard.press("Escape")


def _job_done(page, title: str, timeout_s: float) -> None:
    """Wait until the job panel shows ``title`` finished (the panel refreshes itself; no reload)."""
    row = page.locator("[data-testid='stMarkdownContainer']").filter(has_text=title).filter(has_text="done")
    row.filter(visible=True).first.wait_for(timeout=timeout_s * 1000)


def test_a_newcomer_on_a_fresh_data_folder(fresh_server, page, tmp_path):
    """Fresh clone: the demo comes over HTTP (the local stand-in for its sources), a budgeted training, a campaign
    whose first questions arrive without a reload, sign-in that survives reloads on every page, sign-out, and the
    app's worker stopping with the app."""
    url = fresh_server.url
    page.goto(url)
    page.get_by_role("textbox", name="Admin username").fill("ada")
    page.get_by_role("textbox", name="Password (at least 8 characters)").fill("long enough")
    page.get_by_role("button", name="Create admin account").click()
    page.get_by_role("heading", name="Administration").wait_for()
    session_cookie(page)
    page.reload()
    page.get_by_role("heading", name="Administration").wait_for()  # still signed in after a reload

    page.get_by_role("button", name="Build the demo project", exact=True).click()
    page.get_by_role("heading", name="PubMed/MeSH demo").wait_for(timeout=180_000)  # built and picked
    _job_done(page, "Embed labels and build the label index", 240)
    page.get_by_text("Models on the test split").wait_for(timeout=60_000)
    cache = tmp_path / "var" / "downloads" / "demo"  # fetched over HTTP into the data folder's cache
    assert sorted(p.name for p in cache.iterdir()) == ["dev-data-med.csv", "test-data-med.csv", "train-data-small.csv",
                                                        "tree-numbers.tsv"]

    nav = page.get_by_test_id("stSidebarNav")
    nav.get_by_role("link", name="Model").click()
    page.get_by_role("heading", name="Train").wait_for()
    page.get_by_role("spinbutton", name="Time budget (min, 0: none)").fill("1")
    page.get_by_role("spinbutton", name="Test documents to evaluate (0: all)").fill("100")
    page.get_by_text("Cross-encoder", exact=True).click()  # untick: the budget goes to the bi-encoder
    page.get_by_role("button", name="Start training").click()
    _job_done(page, "Train the label ranking model", 420)
    page.get_by_text("on 100 test documents").first.wait_for()

    page.get_by_text("New labels to build pools for").wait_for()
    choose(page, "New labels to build pools for", "Breast Neoplasms")
    page.get_by_role("button", name="Build the pools").click()
    _job_done(page, "Build the new labels' document pools", 300)

    nav.get_by_role("link", name="Annotate").click()
    page.get_by_role("textbox", name="Campaign name").fill("breast")
    choose(page, "New labels", "Breast Neoplasms")
    page.get_by_role("button", name="Start the campaign").click()
    page.get_by_text("Preparing the first questions").wait_for()
    page.get_by_text("Does this document belong to the label?").wait_for(timeout=300_000)  # no reload

    for path in ("", "Annotate", "Model", "Evaluate", "Taxonomy"):  # a reload (a fresh load) keeps the sign-in
        page.goto(f"{url}/{path}")
        page.get_by_text("Signed in as").wait_for()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    page.reload()
    page.get_by_role("button", name="Sign in").wait_for()
    page.goto(f"{url}/Annotate")
    page.get_by_text("You are not signed in").wait_for()

    from storage.models import Worker

    db = Database(f"sqlite:///{tmp_path / 'var' / 'xmtc.db'}")
    with db.session() as s:
        pids = [w.pid for w in s.scalars(select(Worker).where(Worker.stopped.is_(False)))]
    db.dispose()
    assert pids, "the app started no worker"
    fresh_server.stop()  # Ctrl-C
    deadline = time.monotonic() + 15
    while not all(process_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(process_gone(p) for p in pids), "the app's worker outlived it"
