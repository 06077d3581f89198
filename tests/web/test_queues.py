"""Queues with their counts, pause and resume, schedules and workers, on every broker."""

from __future__ import annotations

from datetime import timedelta

from starlette.testclient import TestClient

import errands


def test_queues_show_their_jobs_by_state_and_pause_stops_claims(api: TestClient) -> None:
    for n in range(3):
        api.post("jobs", json={"task": "ext.x", "queue": "q1", "args": [n]})
    [q1] = [queue for queue in api.get("queues").json() if queue["name"] == "q1"]
    assert (q1["depth"], q1["counts"]["available"], q1["paused"]) == (3, 3, False)
    paused = api.post("queues/q1/pause").json()
    assert paused["paused"] is True
    claim = {"worker_id": "w", "n": 3}
    assert api.post("queues/q1/claim", json=claim).json()["jobs"] == []
    assert api.post("queues/q1/resume").json()["paused"] is False
    assert len(api.post("queues/q1/claim", json=claim).json()["jobs"]) == 3
    assert api.get("queues/q1").json()["counts"]["running"] == 3
    assert api.get("queues/never-used").json()["depth"] == 0


def test_workers_show_pull_clients_by_their_heartbeat(api: TestClient) -> None:
    api.post("jobs", json={"task": "ext.x", "queue": "pulled"})
    [job] = api.post("queues/pulled/claim", json={"worker_id": "go-1"}).json()["jobs"]
    beat = {"token": job["token"], "worker_id": "go-1", "hostname": "box", "concurrency": 4}
    api.post(f"jobs/{job['id']}/extend", json=beat)
    workers = {w["id"]: w for w in api.get("workers").json()}
    assert (workers["go-1"]["hostname"], workers["go-1"]["concurrency"]) == ("box", 4)


def test_schedules_are_listed(app: errands.App, api: TestClient) -> None:
    app.periodic(app.get_task("math.add"), every=timedelta(minutes=5), args=(1, 2))
    app.schedules.sync()
    [schedule] = api.get("schedules").json()
    assert (schedule["name"], schedule["paused"]) == ("math.add", False)
    assert schedule["definition"]["task"] == "math.add"
