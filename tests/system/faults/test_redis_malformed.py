"""T6 on Redis: malformed payloads and hostile field values written straight into the job
hashes, and index entries that name no job, among valid jobs. Each hostile job is dead-lettered
with its reason and raw bytes, the stray entries are dropped, the valid jobs complete, and the
worker never crashes.

The hostile jobs start as placeholders enqueued into a paused queue (so they sit in the real
key layout), then their hashes are overwritten with raw HSETs, as a foreign writer or a bad
migration would, before the queue is resumed.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import redis

import errands
from errands.brokers.redis.keys import Keys
from errands.brokers.redis.url import parse_url
from errands.job import JobSpec
from tests.system.faults import faultapp
from tests.system.faults.conftest import Processes, wait_until, worker_alive
from tests.system.faults.hostile import pickle_payload
from tests.system.faults.test_t6_malformed import as_stored, error_problem, hostile_payloads
from tests.system.faults.trail import Trail

pytestmark = pytest.mark.brokers("redis", reason="writes into Redis keys directly")

#: Field values no errands writes; each hostile job gets one of them besides its payload.
GARBLED_FIELDS: list[dict[str, Any]] = [
    {},
    {"priority": "high"},
    {"attempt": "many"},
    {"errors": "not json"},
    {"progress": "{]"},
    {"enqueued_at": "yesterday"},
    {"max_attempts": ""},
]


@pytest.fixture
def raw(broker_url: str) -> Iterator[redis.Redis]:
    parsed = parse_url(broker_url)
    client = redis.Redis.from_url(parsed.connect)
    yield client
    client.close()


@pytest.fixture
def procs(tmp_path: Path, broker_url: str) -> Iterator[Processes]:
    """Worker subprocesses on this test's Redis prefix (Processes only reads the URL)."""
    store: Any = SimpleNamespace(url=broker_url)
    running = Processes(tmp_path, store, Trail(tmp_path / "trail"))
    yield running
    running.kill_all()


def test_hostile_hashes_are_dead_lettered_and_the_worker_lives(
    procs: Processes, app: errands.App, raw: redis.Redis, broker_url: str, tmp_path: Path
) -> None:
    keys = Keys(parse_url(broker_url).prefix)
    sentinel = tmp_path / "sentinel"
    control = tmp_path / "control"
    pickle.loads(pickle_payload(control, 2))
    assert control.exists()  # the pickle kind is live: unpickling it would write the sentinel

    hostile = hostile_payloads(sentinel, 3)
    app.portal.call(app.call_broker, lambda b: b.pause(["default"]))
    stored = [as_stored(i, one.raw) for i, one in enumerate(hostile)]
    specs = [
        JobSpec(id=job_id, task=task, queue="default", payload=b"placeholder")
        for job_id, task, _ in stored
    ]
    app.portal.call(app.call_broker, lambda b: b.enqueue_many(specs))
    for i, (job_id, _, payload) in enumerate(stored):
        raw.hset(keys.job(job_id), mapping={"payload": payload, **GARBLED_FIELDS[i % 7]})
    stray = f"{'0' * 24}no-such-job"
    raw.zadd(f"{keys.tag}:ready:default", {stray: 0})
    valid = [h.id for h in app.enqueue_many([faultapp.noop.call(i) for i in range(200)])]

    worker = procs.worker("--pool", "thread", "--concurrency", "8", "--queues", "default")
    app.portal.call(app.call_broker, lambda b: b.resume(["default"]))
    ids = [job_id for job_id, _, _ in stored] + valid

    def settled() -> bool:
        assert not sentinel.exists(), "a pickle payload was unpickled"
        worker_alive(procs, worker)
        jobs = app.portal.call(app.call_broker, lambda b: b.get(ids))
        return all(job.state.terminal for job in jobs)

    wait_until(settled, within=timedelta(seconds=60), what="every job terminal")
    jobs = {job.id: job for job in app.portal.call(app.call_broker, lambda b: b.get(ids))}
    assert [jobs[i].state for i in valid] == ["completed"] * len(valid)
    wrong = []
    for i, (one, (job_id, _, payload)) in enumerate(zip(hostile, stored, strict=True)):
        job = jobs[job_id]
        if job.state != "failed" or job.fail_reason != one.reason:
            wrong.append(f"{job_id} {one.kind}: {job.state}/{job.fail_reason}, want {one.reason}")
            continue
        if job.payload != payload:
            wrong.append(f"{job_id} {one.kind}: stored payload changed")
        errors = [{"type": e.type, "kind": str(e.kind), "message": e.message} for e in job.errors]
        problem = error_problem(one, payload, errors, job.attempt, job.failures)
        if problem:
            wrong.append(f"{job_id} {one.kind} {GARBLED_FIELDS[i % 7]}: {problem}")
    assert wrong == [], "\n".join(wrong)
    assert raw.zscore(f"{keys.tag}:ready:default", stray) is None  # the stray entry is dropped
    assert not sentinel.exists()
    worker_alive(procs, worker)
    assert "inside errands" not in procs.log(worker)  # no job hit a bug of errands' own
