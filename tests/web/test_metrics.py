"""GET /metrics: jobs by queue and state, depth, workers and the API's own counters."""

from __future__ import annotations

from starlette.testclient import TestClient

import errands
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
