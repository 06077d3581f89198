"""Enqueueing and reading jobs through the API, on every broker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.testclient import TestClient

import errands


@contextmanager
def worker(app: errands.App, *queues: str) -> Iterator[None]:
    """A Python worker of `app` that runs until the jobs there are done."""
    thread = threading.Thread(target=app.run_until_idle, kwargs={"queues": list(queues)})
    thread.start()
    try:
        yield
    finally:
        thread.join(30)


def enqueue(api: TestClient, **job: object) -> str:
    """POST one job; its id."""
    reply = api.post("jobs", json=job)
    assert reply.status_code == 201, reply.text
    [stored] = reply.json()["jobs"]
    return str(stored["id"])


def test_a_job_enqueued_over_http_is_run_by_a_python_worker_and_its_result_long_polled(
    app: errands.App, api: TestClient
) -> None:
    job_id = enqueue(api, task="math.add", args=[2, 3])
    assert api.get(f"jobs/{job_id}").json()["state"] == "available"
    with worker(app, "default"):
        done = api.get(f"jobs/{job_id}/wait", params={"timeout": 20}).json()
    assert (done["state"], done["done"], done["result"]) == ("completed", True, 5)
    assert done["args"] == [2, 3]


def test_a_wait_that_times_out_shows_the_job_as_it_is(api: TestClient) -> None:
    job_id = enqueue(api, task="math.add", args=[1, 1])
    waited = api.get(f"jobs/{job_id}/wait", params={"timeout": 0.2}).json()
    assert (waited["state"], waited["done"]) == ("available", False)


def test_a_batch_is_stored_in_one_write_or_not_at_all(app: errands.App, api: TestClient) -> None:
    jobs = [{"task": "math.add", "args": [n, n]} for n in range(5)]
    reply = api.post("jobs/batch", json={"jobs": jobs})
    assert reply.status_code == 201
    ids = [job["id"] for job in reply.json()["jobs"]]
    with worker(app, "default"):
        results = [api.get(f"jobs/{i}/wait", params={"timeout": 20}).json()["result"] for i in ids]
    assert results == [0, 2, 4, 6, 8]
    bad = api.post("jobs/batch", json={"jobs": [*jobs, {"task": "math.add", "args": [1]}]})
    assert bad.status_code == 422
    assert "missing a required argument" in bad.json()["detail"]
    assert len(api.get("jobs", params={"limit": 100}).json()["jobs"]) == 5


def test_options_idempotency_and_delay(api: TestClient) -> None:
    first = api.post(
        "jobs",
        json={"task": "math.add", "args": [1, 2], "idempotency_key": "k1", "priority": 5},
    ).json()["jobs"][0]
    again = api.post(
        "jobs", json={"task": "math.add", "args": [1, 2], "idempotency_key": "k1"}
    ).json()["jobs"][0]
    assert (again["id"], again["duplicate"]) == (first["id"], True)
    assert api.get(f"jobs/{first['id']}").json()["priority"] == 5
    later = enqueue(api, task="math.add", args=[1, 2], delay=3600, queue="later")
    job = api.get(f"jobs/{later}").json()
    assert (job["state"], job["queue"]) == ("scheduled", "later")


def test_tagged_arguments_reach_the_task_as_their_types(api: TestClient) -> None:
    stamp = {"__errands__": "datetime", "v": "2030-01-01T12:00:00+00:00"}
    job_id = enqueue(api, task="ext.stamp", args=[stamp], queue="ext")
    assert api.get(f"jobs/{job_id}").json()["args"] == [stamp]


def test_cancel_and_requeue(api: TestClient) -> None:
    job_id = enqueue(api, task="math.add", args=[1, 2])
    assert api.post(f"jobs/{job_id}/requeue").status_code == 409
    cancelled = api.post(f"jobs/{job_id}/cancel").json()
    assert (cancelled["state"], cancelled["cancel_reason"]) == ("cancelled", "requested")
    again = api.post(f"jobs/{job_id}/requeue").json()
    assert again["state"] == "available"
    missing = api.post("jobs/0190-nope/cancel")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_jobs_list_in_keyset_pages_with_filters(api: TestClient) -> None:
    ids = [enqueue(api, task="math.add", args=[n, 0], queue="pages") for n in range(7)]
    enqueue(api, task="math.add", args=[0, 0], queue="other")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"queue": "pages", "limit": 3, "state": "available"}
        if cursor:
            params["cursor"] = cursor
        page = api.get("jobs", params=params).json()
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert api.get("jobs", params={"state": "running"}).json()["jobs"] == []
    assert api.get("jobs", params={"state": "bogus"}).status_code == 422


def test_jobs_list_by_workflow_and_by_idempotency_key(app: errands.App, api: TestClient) -> None:
    add = app.get_task("math.add")
    workflow = errands.group(add.call(1, 1), add.call(2, 2)).enqueue()
    keyed = enqueue(api, task="math.add", args=[3, 3], idempotency_key="order-42")
    enqueue(api, task="math.add", args=[4, 4])

    by_workflow = api.get("jobs", params={"workflow": workflow.id}).json()
    by_key = api.get("jobs", params={"idempotency_key": "order-42"}).json()

    assert [job["id"] for job in by_workflow["jobs"]] == [j.id for j in workflow.jobs][::-1]
    assert {job["workflow_id"] for job in by_workflow["jobs"]} == {workflow.id}
    assert [job["id"] for job in by_key["jobs"]] == [keyed]
    assert api.get("jobs", params={"idempotency_key": "order-43"}).json()["jobs"] == []


def test_routing_through_an_exchange_and_publishing_an_event(
    app: errands.App, api: TestClient
) -> None:
    app.exchange("orders", kind="topic")
    app.bind("orders", "orders-eu", key="eu.*")
    app.bind("orders", "audit", key="#")
    app.exchange("strict")  # no binding: a message to it is refused
    app.subscribe("order.*")(app.get_task("math.add"))
    routed = api.post(
        "jobs",
        json={"task": "ext.fulfil", "args": [42], "exchange": "orders", "routing_key": "eu.paris"},
    ).json()["jobs"]
    queues = sorted(api.get(f"jobs/{job['id']}").json()["queue"] for job in routed)
    assert queues == ["audit", "orders-eu"]
    unroutable = api.post("jobs", json={"task": "ext.fulfil", "exchange": "strict"})
    assert unroutable.status_code == 422
    assert unroutable.json()["type"].endswith("/unroutable")
    published = api.post(
        "events", json={"topic": "order.created", "args": [1, 2], "event_id": "e1"}
    ).json()["jobs"]
    assert [api.get(f"jobs/{job['id']}").json()["task"] for job in published] == ["math.add"]
