"""The dashboard's pages and forms without a browser: what they show, what they hide, and who
may change anything."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import timedelta

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

import errands
from errands.job import JobState
from errands.web import WebConfig, create_app
from errands.web.dashboard import deadletters
from errands.web.dashboard.sessions import SESSION_COOKIE, Sessions
from tests.web.conftest import LOCAL

PAGES = ["/", "/jobs", "/dead-letters", "/schedules", "/workers"]


def csrf_of(client: TestClient, path: str = "/") -> str:
    """The CSRF token a page of the dashboard carries for this client."""
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', client.get(path).text)
    assert found is not None
    return found.group(1)


def failed_job(app: errands.App, **kwargs: object) -> str:
    """A dead letter of flaky.connect."""
    handle = app.by_name("flaky.connect").enqueue("db.example", **kwargs)
    app.run_until_idle()
    assert handle.refresh().state == JobState.FAILED
    return handle.id


@pytest.mark.parametrize("path", PAGES)
def test_every_page_answers_html_with_a_strict_content_policy(
    client: TestClient, path: str
) -> None:
    reply = client.get(path)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in reply.headers["content-security-policy"]
    assert "cdn" not in reply.text.lower()
    assert "https://" not in reply.text


def test_htmx_is_served_from_the_package(client: TestClient) -> None:
    reply = client.get("/static/htmx.min.js")
    assert reply.status_code == 200
    assert "htmx" in reply.text


def test_a_job_page_hides_secret_arguments_and_results(
    app: errands.App, client: TestClient
) -> None:
    handle = app.by_name("math.add").enqueue(
        2, 3, password="hunter2", options={"db_token": "tok-123", "region": "eu-west"}
    )
    app.run_until_idle()
    text = client.get(f"/jobs/{handle.id}").text
    for secret in ("hunter2", "tok-123", "sk-result-secret"):
        assert secret not in text
    assert text.count("••••") == 3
    assert "eu-west" in text
    assert "&#34;sum&#34;: 5" in text


def test_the_redaction_rule_is_configurable(app: errands.App) -> None:
    handle = app.by_name("math.add").enqueue(1, 1, card_number="4111", password="visible")
    web = create_app(app, tokens=(), config=WebConfig(maintenance=False, redact="(?i)card"))
    with TestClient(web, client=LOCAL) as client:
        text = client.get(f"/jobs/{handle.id}").text
    assert "4111" not in text
    assert "visible" in text


def test_a_dead_letter_shows_its_error_and_traceback(app: errands.App, client: TestClient) -> None:
    job_id = failed_job(app, password="pw-1")
    text = client.get(f"/jobs/{job_id}").text
    assert "ConnectionRefusedError" in text
    assert "db.example refused the connection" in text
    assert "Traceback (most recent call last)" in text
    assert "pw-1" not in text
    assert job_id in client.get("/dead-letters").text


def test_a_post_without_the_csrf_token_changes_nothing(
    app: errands.App, client: TestClient
) -> None:
    app.by_name("math.add").options(queue="mail").enqueue(1, 2)
    refused = client.post("/queues/mail/pause")
    forged = client.post("/queues/mail/pause", headers={"X-CSRF-Token": "0" * 64})
    assert (refused.status_code, forged.status_code) == (403, 403)
    assert "mail" not in app.portal.call(app.call_broker, lambda b: b.counts()).paused
    accepted = client.post("/queues/mail/pause", headers={"X-CSRF-Token": csrf_of(client)})
    assert accepted.status_code == 303
    assert "mail" in app.portal.call(app.call_broker, lambda b: b.counts()).paused


def test_a_csrf_token_of_another_browser_is_refused(app: errands.App, client: TestClient) -> None:
    token = csrf_of(client)
    web = client.app
    with TestClient(web, client=LOCAL, follow_redirects=False) as other:
        other.get("/")  # a CSRF cookie of its own
        assert other.post("/queues/mail/pause", headers={"X-CSRF-Token": token}).status_code == 403


def test_a_plain_form_post_sends_the_token_as_a_field(app: errands.App, client: TestClient) -> None:
    job_id = failed_job(app)
    reply = client.post(f"/dead-letters/{job_id}/retry", data={"csrf": csrf_of(client)})
    assert (reply.status_code, reply.headers["location"]) == (303, "/dead-letters")
    assert app.job(job_id).refresh().state == JobState.AVAILABLE


def test_an_htmx_post_is_answered_with_a_redirect_header(
    app: errands.App, client: TestClient
) -> None:
    job_id = failed_job(app)
    headers = {"X-CSRF-Token": csrf_of(client), "HX-Request": "true"}
    reply = client.post(f"/jobs/{job_id}/requeue", headers=headers)
    assert (reply.status_code, reply.headers["hx-redirect"]) == (204, f"/jobs/{job_id}")


def test_retry_all_requeues_every_dead_letter_a_page_at_a_time(
    app: errands.App, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deadletters, "RETRY_BATCH", 2)
    ids = [failed_job(app) for _ in range(5)]
    reply = client.post("/dead-letters/retry", data={"csrf": csrf_of(client), "queue": ""})
    assert reply.status_code == 303
    assert {app.job(job_id).refresh().state for job_id in ids} == {JobState.AVAILABLE}


def test_purge_deletes_the_dead_letters_of_every_queue(
    app: errands.App, client: TestClient
) -> None:
    failed_job(app)
    app.by_name("flaky.connect").options(queue="other").enqueue("x")
    app.run_until_idle(queues=["other"])
    client.post("/dead-letters/purge", data={"csrf": csrf_of(client)})
    counts = app.portal.call(app.call_broker, lambda b: b.counts())
    assert counts.total(JobState.FAILED) == 0


def test_jobs_are_paged_by_keyset_without_overlap(app: errands.App, client: TestClient) -> None:
    app.by_name("math.add").enqueue_many([(n, n) for n in range(120)])
    first = client.get("/jobs").text
    cursor = re.search(r'cursor=([0-9a-f-]+)"', first)
    assert cursor is not None
    second = client.get(f"/jobs?cursor={cursor.group(1)}").text
    shown = [set(re.findall(r'href="/jobs/([0-9a-f-]{36})"', text)) for text in (first, second)]
    assert [len(ids) for ids in shown] == [50, 50]
    assert not shown[0] & shown[1]


def test_searching_an_id_opens_the_job_and_a_task_filters(
    app: errands.App, client: TestClient
) -> None:
    handle = app.by_name("math.add").enqueue(1, 2)
    other = app.by_name("slow.nap").enqueue(0)
    assert client.get(f"/jobs?q={handle.id}").headers["location"] == f"/jobs/{handle.id}"
    text = client.get("/jobs?q=slow.nap").text
    assert other.id in text
    assert handle.id not in text


def test_searching_an_idempotency_key_lists_the_jobs_holding_it(
    app: errands.App, client: TestClient
) -> None:
    keyed = app.by_name("math.add").options(idempotency_key="order-42").enqueue(1, 2)
    other = app.by_name("math.add").enqueue(3, 4)
    text = client.get("/jobs?q=order-42").text
    assert keyed.id in text
    assert other.id not in text
    assert keyed.id not in client.get("/jobs?q=order-43").text


def test_the_workflow_page_shows_every_member_with_its_state(
    app: errands.App, client: TestClient
) -> None:
    app.by_name("math.add").enqueue(0, 0)  # a job outside the workflow
    add = app.by_name("math.add")
    flow = errands.chain(add.call(1, 2), errands.group(add.call(b=1), add.call(b=2))).enqueue()
    text = client.get(f"/workflows/{flow.id}").text
    assert sorted(re.findall(r'<a href="/jobs/([0-9a-f-]{36})" class="node', text)) == sorted(
        handle.id for handle in flow.jobs
    )
    assert text.count('class="edge"') == 2
    assert "state-available" in text
    assert "state-pending" in text


def test_cancelling_a_workflow_cancels_its_waiting_jobs(
    app: errands.App, client: TestClient
) -> None:
    add = app.by_name("math.add")
    flow = errands.chain(add.call(1, 2), add.call(b=3)).enqueue()
    reply = client.post(f"/workflows/{flow.id}/cancel", data={"csrf": csrf_of(client)})
    assert reply.status_code == 303
    assert {handle.refresh().state for handle in flow.jobs} == {JobState.CANCELLED}


def test_schedules_show_next_times_in_their_zone_and_pause(
    app: errands.App, client: TestClient
) -> None:
    app.schedules.add("math.add", cron="0 9 * * *", tz="Europe/Berlin", args=(1, 2), name="am")
    text = client.get("/schedules").text
    assert re.search(r"09:00:00 CE[S]?T", text)
    assert re.search(r"0[78]:00:00 UTC", text)
    client.post("/schedules/am/pause", data={"csrf": csrf_of(client, "/schedules")})
    assert app.schedules.get("am").paused
    client.post("/schedules/am/resume", data={"csrf": csrf_of(client, "/schedules")})
    assert not app.schedules.get("am").paused


def test_workers_show_their_heartbeat_and_memory(app: errands.App, client: TestClient) -> None:
    app.run_until_idle()  # a worker that started sent a heartbeat
    text = client.get("/workers").text
    assert re.search(r"\d+\.\d MiB", text)


def test_a_missing_job_is_a_404_page(client: TestClient) -> None:
    reply = client.get("/jobs/01b8dd58-e200-7000-b709-5a44192f2630")
    assert reply.status_code == 404
    assert "no such job" in reply.text


# -- logging in ---------------------------------------------------------------------------------


@pytest.fixture
def guarded(app: errands.App) -> Iterator[TestClient]:
    """The dashboard of a server with a token."""
    web = create_app(app, tokens=("s3cret",), config=WebConfig(maintenance=False))
    with TestClient(web, client=LOCAL, follow_redirects=False) as client:
        yield client


def test_with_tokens_a_page_sends_a_stranger_to_the_login_form(guarded: TestClient) -> None:
    reply = guarded.get("/jobs")
    assert (reply.status_code, reply.headers["location"]) == (303, "/login?next=/jobs")
    assert guarded.get("/api/v1/queues").status_code == 401


def test_a_wrong_token_is_refused_and_a_right_one_logs_in(guarded: TestClient) -> None:
    token = csrf_of(guarded, "/login")
    wrong = guarded.post("/login", data={"csrf": token, "token": "guess", "next": "/jobs"})
    assert wrong.status_code == 401
    assert SESSION_COOKIE not in guarded.cookies
    right = guarded.post("/login", data={"csrf": token, "token": "s3cret", "next": "/jobs"})
    assert (right.status_code, right.headers["location"]) == (303, "/jobs")
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "s3cret" not in cookie
    assert guarded.get("/jobs").status_code == 200


def test_the_login_cookie_never_opens_the_api(guarded: TestClient) -> None:
    token = csrf_of(guarded, "/login")
    guarded.post("/login", data={"csrf": token, "token": "s3cret"})
    assert guarded.get("/").status_code == 200
    assert guarded.get("/api/v1/queues").status_code == 401


def test_login_never_redirects_off_the_site(guarded: TestClient) -> None:
    token = csrf_of(guarded, "/login")
    reply = guarded.post(
        "/login", data={"csrf": token, "token": "s3cret", "next": "//evil.example"}
    )
    assert reply.headers["location"] == "/"


def test_without_tokens_a_remote_browser_is_refused(app: errands.App) -> None:
    web = create_app(app, tokens=(), config=WebConfig(maintenance=False))
    with TestClient(web, client=("192.0.2.7", 5000)) as client:
        assert client.get("/").status_code == 403


def test_a_login_expires_and_dies_with_its_token() -> None:
    sessions = Sessions(["old", "new"], age=timedelta(hours=1))
    cookie = sessions.issue(b"old", now=1_000_000)
    assert sessions.valid(cookie, now=1_000_000 + 60)
    assert not sessions.valid(cookie, now=1_000_000 + 3601)
    assert not Sessions(["new"]).valid(cookie, now=1_000_000 + 60)
    assert not sessions.valid(cookie.replace(".", "x", 1), now=1_000_000 + 60)
