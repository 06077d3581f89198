"""Delays and ETAs on a real worker: a delayed job starts within 100 ms of its time on an idle
worker (the worker sleeps until the next due job, not for a polling interval), on every
broker. `benchmarks/wakeup.py` measures the same with more samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import errands
from errands.job import Job
from tests.system.conftest import WITHIN, Workers

SAMPLES = 12
ON_TIME = timedelta(milliseconds=100)


def test_a_delayed_job_starts_within_100_ms_of_its_time_on_an_idle_worker(
    app: errands.App, workers: Workers
) -> None:
    workers.start()
    workers.wait_log(0, "started", WITHIN)
    noop = app.by_name("noop")
    late: list[timedelta] = []
    for i in range(SAMPLES):
        # Due times spread over a second so none lands on a polling boundary by luck.
        eta = datetime.now(UTC) + timedelta(milliseconds=200 + (i * 83) % 300)
        handle = noop.options(eta=eta).enqueue()
        handle.result(timeout=10)
        late.append(started(handle.refresh()) - eta)
    late.sort()
    median = late[len(late) // 2]
    print(f"\nstart after its time: median {ms(median)}, max {ms(late[-1])} ({SAMPLES} jobs)")
    assert late[0] >= -timedelta(milliseconds=1), f"a job started early: {ms(late[0])}"
    assert late[-1] <= ON_TIME, f"a delayed job started {ms(late[-1])} after its time"


def started(job: Job) -> datetime:
    """When the job was claimed, by the broker's clock."""
    assert job.started_at is not None
    return job.started_at


def ms(delta: timedelta) -> str:
    """A duration in milliseconds, for messages."""
    return f"{delta.total_seconds() * 1000:.1f} ms"
