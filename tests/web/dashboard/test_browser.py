"""The dashboard in a real browser (Debian's chromium, headless, through Playwright): every
page loads without a console error and is photographed for the docs, and the buttons and live
counts do what they say, checked through the broker."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

import errands
from errands.job import JobState
from errands.web.dashboard.live import cell_id
from tests.web.dashboard.conftest import Server, Tab, off_loop

#: Milliseconds Playwright waits for the page to show what a test expects.
WAIT = 20_000


def seed(app: errands.App) -> dict[str, str]:
    """Jobs in several states, a dead letter, a workflow and a schedule; returns ids to visit."""
    add, connect = app.by_name("math.add"), app.by_name("flaky.connect")
    done = add.enqueue(2, 3, password="hunter2")
    dead = connect.enqueue("db.example", password="hunter2")
    app.run_until_idle()
    add.options(queue="mail").enqueue_many([(n, n) for n in range(12)])
    add.options(queue="reports", delay=timedelta_hours()).enqueue(1, 1)
    flow = errands.chain(
        add.call(1, 2), errands.group(add.call(b=1), add.call(b=2)), add.call(b=0)
    ).enqueue()
    app.schedules.add("math.add", cron="0 9 * * 1-5", tz="Europe/Berlin", args=(1, 2), name="am")
    return {"done": done.id, "dead": dead.id, "flow": flow.id}


def timedelta_hours() -> Any:
    from datetime import timedelta

    return timedelta(hours=1)


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def test_every_page_loads_without_a_console_error(app: errands.App, tab: Tab) -> None:
    ids = off_loop(seed, app)
    pages = {
        "overview": "/",
        "jobs": "/jobs",
        "job": f"/jobs/{ids['dead']}",
        "dead-letters": "/dead-letters",
        "schedules": "/schedules",
        "workers": "/workers",
        "workflow": f"/workflows/{ids['flow']}",
    }
    for name, path in pages.items():
        page = tab.open(path)
        expect(page.locator("h1")).to_be_visible()
        if name == "overview":  # two readings make the first throughput figure
            expect(page.locator("#throughput")).not_to_have_text("—", timeout=WAIT)
        tab.shoot(name)
        assert "hunter2" not in page.content()
    assert tab.errors == []


def test_retrying_a_dead_letter_from_the_page_requeues_it(app: errands.App, tab: Tab) -> None:
    dead = off_loop(app.by_name("flaky.connect").enqueue, "db.example")
    off_loop(app.run_until_idle)
    page = tab.open("/dead-letters")
    row = page.locator("tr", has_text=dead.id[:8])
    with page.expect_navigation():
        row.get_by_role("button", name="Retry").click()
    assert off_loop(dead.refresh).state == JobState.AVAILABLE
    expect(page.locator("td.empty")).to_have_text("No dead letters.")
    assert tab.errors == []


def test_pausing_a_queue_from_the_page_stops_claims(app: errands.App, tab: Tab) -> None:
    off_loop(app.by_name("math.add").options(queue="mail").enqueue, 1, 2)
    page = tab.open("/")
    row = page.locator("tr", has_text="mail")
    with page.expect_navigation():
        row.get_by_role("button", name="Pause").click()
    expect(page.locator(f"#{cell_id('mail', 'paused')}")).to_have_text("paused")
    assert off_loop(app.run_until_idle, queues=["mail"]) == 0
    with page.expect_navigation():
        page.locator("tr", has_text="mail").get_by_role("button", name="Resume").click()
    assert off_loop(app.run_until_idle, queues=["mail"]) == 1
    assert tab.errors == []


def test_a_live_counter_moves_while_a_worker_drains(app: errands.App, tab: Tab) -> None:
    off_loop(app.by_name("slow.nap").options(queue="drain").enqueue_many, [(0.05,)] * 20)
    page = tab.open("/")
    completed = page.locator(f"#{cell_id('drain', 'completed')}")
    expect(completed).to_have_text("0")
    worker = threading.Thread(
        target=app.run_until_idle, kwargs={"queues": ["drain"], "concurrency": 1}
    )
    worker.start()
    try:
        expect(completed).not_to_have_text("0", timeout=WAIT)  # pushed while it drains
        expect(completed).to_have_text("20", timeout=WAIT)
        expect(page.locator("#total-completed")).to_have_text("20")
    finally:
        worker.join(timeout=60)
    assert tab.errors == []


@pytest.fixture
def guarded(app: errands.App) -> Any:
    """The dashboard of a server with the token "s3cret"."""
    served = Server(app, tokens=("s3cret",)).start()
    yield served
    served.stop()


def test_a_browser_logs_in_with_a_token(browser: Any, guarded: Server) -> None:
    tab = Tab(browser, guarded.url)
    try:
        page = tab.open("/jobs")
        assert page.url.endswith("/login?next=/jobs")
        tab.shoot("login")
        page.get_by_label("API token").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_have_text("That is not one of this server's tokens.")
        page.get_by_label("API token").fill("s3cret")
        with page.expect_navigation():
            page.get_by_role("button", name="Log in").click()
        assert page.url == f"{guarded.url}/jobs"
        [cookie] = [c for c in tab.context.cookies() if c["name"] == "errands_session"]
        assert cookie["httpOnly"]
        assert cookie["sameSite"] == "Strict"
        # Console errors: only the 401 of the wrong token, which the browser reports.
        assert [error for error in tab.errors if "401" not in error] == []
    finally:
        tab.context.close()


def test_a_served_dashboard_refuses_posts_without_the_csrf_token(
    app: errands.App, server: Server
) -> None:
    off_loop(app.by_name("math.add").options(queue="mail").enqueue, 1, 2)
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/").status_code == 200  # a CSRF cookie, but no token sent back
        assert client.post("/queues/mail/pause").status_code == 403
    counts = off_loop(app.portal.call, app.call_broker, lambda b: b.counts())
    assert "mail" not in counts.paused
