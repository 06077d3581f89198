"""The pull API: a worker in any language claims, extends and finishes jobs by their lease
token, on every broker; a client killed mid-job loses its lease and the job runs again."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import httpx
from starlette.testclient import TestClient

import errands
from tests.web.conftest import Processes


def claim(api: TestClient, queue: str, **options: Any) -> list[dict[str, Any]]:
    """The jobs one claim of `queue` hands out."""
    reply = api.post(f"queues/{queue}/claim", json={"worker_id": "w-test", **options})
    assert reply.status_code == 200, reply.text
    jobs: list[dict[str, Any]] = reply.json()["jobs"]
    return jobs


def test_a_task_no_python_worker_knows_is_worked_through_the_pull_api(api: TestClient) -> None:
    reply = api.post(
        "jobs",
        json={"task": "resize.image", "args": ["cat.png"], "kwargs": {"width": 64}, "queue": "img"},
    )
    job_id = reply.json()["jobs"][0]["id"]
    [job] = claim(api, "img", n=10, lease=30)
    assert (job["id"], job["task"], job["args"], job["kwargs"]) == (
        job_id,
        "resize.image",
        ["cat.png"],
        {"width": 64},
    )
    assert job["attempt"] == 1
    extended = api.post(
        f"jobs/{job_id}/extend",
        json={"token": job["token"], "worker_id": "w-test", "progress": {"fraction": 0.5}},
    ).json()
    assert extended["cancel_requested"] is False
    assert api.get(f"jobs/{job_id}").json()["progress"]["fraction"] == 0.5
    finished = api.post(
        f"jobs/{job_id}/finish",
        json={"token": job["token"], "outcome": "completed", "result": {"path": "cat-64.png"}},
    )
    assert finished.json() == {"id": job_id, "state": "completed"}
    done = api.get(f"jobs/{job_id}/wait", params={"timeout": 5}).json()
    assert done["result"] == {"path": "cat-64.png"}
    assert claim(api, "img") == []


def test_a_stale_token_is_refused_and_changes_nothing(api: TestClient) -> None:
    api.post("jobs", json={"task": "ext.x", "queue": "ext"})
    [job] = claim(api, "ext")
    for verb, body in [
        ("extend", {"token": "not-the-token", "worker_id": "w-test"}),
        ("finish", {"token": "not-the-token", "outcome": "completed", "result": 1}),
    ]:
        refused = api.post(f"jobs/{job['id']}/{verb}", json=body)
        assert refused.status_code == 409
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("/lease-lost")
    assert api.get(f"jobs/{job['id']}").json()["state"] == "running"
    ok = {"token": job["token"], "outcome": "completed", "result": None}
    assert api.post(f"jobs/{job['id']}/finish", json=ok).status_code == 200
    late = api.post(f"jobs/{job['id']}/finish", json=ok)
    assert late.status_code == 409


def test_failures_retry_by_the_policy_then_dead_letter(api: TestClient) -> None:
    job_id = api.post("jobs", json={"task": "ext.fails", "queue": "ext", "max_attempts": 2}).json()[
        "jobs"
    ][0]["id"]
    [job] = claim(api, "ext")
    error = {"type": "IOError", "message": "disk full", "traceback": "at main.go:12"}
    again = api.post(
        f"jobs/{job_id}/finish",
        json={"token": job["token"], "outcome": "retry", "delay": 0, "error": error},
    )
    assert again.json()["state"] == "retryable"
    [job] = claim(api, "ext", wait=5)
    assert job["attempt"] == 2
    dead = api.post(
        f"jobs/{job_id}/finish", json={"token": job["token"], "outcome": "failed", "error": error}
    )
    assert dead.json()["state"] == "failed"
    stored = api.get(f"jobs/{job_id}").json()
    assert stored["fail_reason"] == "error"
    assert [(e["type"], e["message"]) for e in stored["errors"]] == [("IOError", "disk full")] * 2
    letters = api.get("dead-letters", params={"queue": "ext"}).json()["jobs"]
    assert [letter["id"] for letter in letters] == [job_id]


def test_a_failure_marked_not_retryable_dead_letters_at_once(api: TestClient) -> None:
    api.post("jobs", json={"task": "ext.fails", "queue": "ext"})
    [job] = claim(api, "ext")
    body = {"token": job["token"], "outcome": "failed", "retry": False}
    assert api.post(f"jobs/{job['id']}/finish", json=body).json()["state"] == "failed"


def test_a_cancel_reaches_the_client_through_extend(api: TestClient) -> None:
    api.post("jobs", json={"task": "ext.long", "queue": "ext"})
    [job] = claim(api, "ext")
    api.post(f"jobs/{job['id']}/cancel")
    beat = {"token": job["token"], "worker_id": "w-test"}
    assert api.post(f"jobs/{job['id']}/extend", json=beat).json()["cancel_requested"] is True
    body = {"token": job["token"], "outcome": "cancelled"}
    assert api.post(f"jobs/{job['id']}/finish", json=body).json()["state"] == "cancelled"


def test_a_claim_waits_for_a_job_to_arrive(app: errands.App, api: TestClient) -> None:
    began = time.monotonic()
    assert claim(api, "late", wait=0.3) == []
    assert time.monotonic() - began >= 0.25
    arrives = threading.Timer(0.3, app.by_name("ext.late").options(queue="late").enqueue)
    arrives.start()
    try:
        [job] = claim(api, "late", wait=10)
    finally:
        arrives.join()
    assert job["task"] == "ext.late"


def test_a_malformed_payload_is_dead_lettered_not_handed_out(
    app: errands.App, api: TestClient
) -> None:
    from errands.job import JobSpec, new_job_id

    bad = JobSpec(id=new_job_id(), task="ext.bad", queue="ext", payload=b"\x80pickle")
    app.portal.call(app.call_broker, lambda b: b.enqueue_many([bad]))
    assert claim(api, "ext") == []
    assert api.get(f"jobs/{bad.id}").json()["fail_reason"] == "malformed"


CLAIMER = """
import sys, time, httpx
base, queue = sys.argv[1], sys.argv[2]
reply = httpx.post(f"{base}/queues/{queue}/claim", json={"worker_id": "doomed", "lease": 1})
print(reply.json()["jobs"][0]["id"], flush=True)
time.sleep(600)
"""


def test_a_pull_client_killed_mid_job_loses_its_lease_and_the_job_runs_again(
    broker_url: str, tmp_path: Any
) -> None:
    procs = Processes(tmp_path, broker_url)
    try:
        base = procs.serve()
        job_id = httpx.post(f"{base}/jobs", json={"task": "ext.slow", "queue": "pulled"}).json()[
            "jobs"
        ][0]["id"]
        claimer = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CLAIMER), base, "pulled"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert claimer.stdout is not None
        assert claimer.stdout.readline().strip() == job_id
        claimer.send_signal(signal.SIGKILL)
        claimer.wait()
        reply = httpx.post(
            f"{base}/queues/pulled/claim", json={"worker_id": "heir", "wait": 15}, timeout=20
        ).json()
        [job] = reply["jobs"]
        assert (job["id"], job["attempt"]) == (job_id, 2)
        stored = httpx.get(f"{base}/jobs/{job_id}").json()
        assert stored["errors"][0]["kind"] == "lease_expired"
    finally:
        procs.stop()
