"""GET /metrics: jobs by queue and state, depth, workers and the API's own counters."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

import errands
from errands.testing import FakeClock
from errands.web import WebConfig, create_app
from tests.web.conftest import LOCAL


def test_metrics_show_the_broker_figures_and_what_passed_through_the_api() -> None:
    app = errands.App("memory://")
    try:
        with TestClient(
            create_app(app, tokens=[], config=WebConfig(maintenance=False)), client=LOCAL
        ) as c:
            for _ in range(2):
                c.post("/api/v1/jobs", json={"task": "ext.m", "queue": "mq"})
            [job] = c.post("/api/v1/queues/mq/claim", json={"worker_id": "w"}).json()["jobs"]
            beat = {"token": job["token"], "worker_id": "w", "concurrency": 3}
            c.post(f"/api/v1/jobs/{job['id']}/extend", json=beat)  # the client's heartbeat
            finish = {"token": job["token"], "outcome": "completed", "result": 1}
            c.post(f"/api/v1/jobs/{job['id']}/finish", json=finish)
            reply = c.get("/metrics")
    finally:
        app.close()
    assert reply.headers["content-type"].startswith("text/plain")
    lines = set(reply.text.splitlines())
    assert 'errands_jobs{queue="mq",state="available"} 1.0' in lines
    assert 'errands_jobs{queue="mq",state="completed"} 1.0' in lines
    assert 'errands_queue_depth{queue="mq"} 1.0' in lines
    assert 'errands_api_enqueued_total{task="ext.m"} 2.0' in lines
    assert 'errands_api_claimed_total{queue="mq"} 1.0' in lines
    assert 'errands_api_finished_total{queue="mq",state="completed"} 1.0' in lines
    assert "errands_workers 1.0" in lines
    assert 'errands_worker_slots{busy="false"} 2.0' in lines


def test_metrics_give_the_age_of_each_queues_oldest_waiting_job() -> None:
    clock = FakeClock()
    app = errands.App("memory://", clock=clock)
    try:
        with TestClient(
            create_app(app, tokens=[], config=WebConfig(maintenance=False)), client=LOCAL
        ) as c:
            c.post("/api/v1/jobs", json={"task": "ext.old", "queue": "slow"})
            clock.advance(timedelta(seconds=60))
            c.post("/api/v1/jobs", json={"task": "ext.new", "queue": "slow"})
            c.post("/api/v1/jobs", json={"task": "ext.run", "queue": "busy"})
            c.post("/api/v1/queues/busy/claim", json={"worker_id": "w"})  # none left waiting
            clock.advance(timedelta(seconds=30))
            text = c.get("/metrics").text
    finally:
        app.close()
    [family] = [
        f
        for f in text_string_to_metric_families(text)
        if f.name == "errands_queue_oldest_waiting_seconds"
    ]
    assert family.type == "gauge"
    ages = {sample.labels["queue"]: sample.value for sample in family.samples}
    assert ages == {"slow": 90.0, "busy": 0.0}
