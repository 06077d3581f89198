"""Conformance fixtures: a broker per parameter on its own FakeClock and storage, and the
small builders every test file shares (specs, errors, heartbeats, one-job claims).

What a broker must do lives in the test files, a file per contract area.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from errands import policy
from errands.brokers import from_url
from errands.brokers.contract import Broker, Claimed, ClaimOptions, WorkerInfo
from errands.job import AttemptError, ErrorKind, Job, JobId, JobSpec, new_job_id
from errands.policy import RescueReport
from errands.testing import FakeClock
from tests.conftest import require_service

from .kit import KIT, lacks, open_broker

LEASE = timedelta(seconds=30)
#: A payload no broker may decode: any bytes at all must round-trip.
PAYLOAD = b'{"v":1,"args":[]}'


def make_broker(kind: str, clock: FakeClock, directory: Path) -> Broker:
    """A broker of kit entry `kind` on the storage for `directory`, not yet opened; a second
    call with the same directory opens the same storage (an entry's URL depends on the
    directory alone), as another process would."""
    return open_broker(kind, clock, directory)


@pytest.fixture
def clock() -> FakeClock:
    """Time for the broker under test; it moves only when a test advances it."""
    return FakeClock()


@pytest.fixture(params=sorted(KIT))
def broker_kind(request: pytest.FixtureRequest) -> str:
    """Which broker this run of a test is about; skips (fails under ERRANDS_REQUIRE_SERVICES=1)
    when its server is not reachable."""
    kind: str = request.param
    why = KIT[kind].unavailable()
    if why is not None:
        require_service(kind, False, why)
    return kind


@pytest.fixture
def broker_url(broker_kind: str, tmp_path: Path) -> Iterator[str]:
    """The URL of the storage the `broker` fixture opens, for other threads and processes;
    what the test left there is cleaned up after it."""
    url = KIT[broker_kind].url(tmp_path)
    yield url
    KIT[broker_kind].cleanup(url)


@pytest.fixture
async def broker(
    broker_url: str, clock: FakeClock, request: pytest.FixtureRequest
) -> AsyncIterator[Broker]:
    """An opened broker with empty storage of its own, closed after the test."""
    opened = from_url(broker_url, clock=clock)
    for marker in request.node.iter_markers("needs"):
        why = lacks(opened.capabilities, marker.args[0])
        if why is not None:
            pytest.skip(why)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def spec(task: str = "noop", queue: str = "default", **fields: Any) -> JobSpec:
    """A job spec with a fresh producer-made id; `fields` set any other JobSpec field."""
    fields.setdefault("payload", PAYLOAD)
    return JobSpec(id=new_job_id(), task=task, queue=queue, **fields)


def error(
    attempt: int = 1, kind: ErrorKind = ErrorKind.EXCEPTION, message: str = "boom"
) -> AttemptError:
    """One failed attempt, as a worker would report it."""
    return AttemptError(
        attempt=attempt, kind=kind, type="ValueError", message=message, traceback="Traceback..."
    )


def heartbeat(clock: FakeClock, worker_id: str = "w1", running: int = 1) -> WorkerInfo:
    """What worker `worker_id` sends with each extend."""
    return WorkerInfo(
        id=worker_id,
        hostname="host-a",
        pid=4242,
        queues=("default",),
        concurrency=4,
        started_at=clock.now(),
        running=running,
    )


async def enqueue(broker: Broker, *specs: JobSpec) -> list[JobId]:
    """Enqueue `specs` in one batch and return the stored ids; none may be a duplicate."""
    enqueued = await broker.enqueue_many(list(specs))
    assert not any(item.duplicate for item in enqueued)
    return [item.job_id for item in enqueued]


async def claim_one(broker: Broker, queue: str = "default", worker_id: str = "w1") -> Claimed:
    """Claim exactly one job of `queue`; fails the test if there is none."""
    claimed = await broker.claim(ClaimOptions([queue], n=1, lease=LEASE, worker_id=worker_id))
    assert len(claimed) == 1, f"expected one claimable job in {queue!r}, got {len(claimed)}"
    return claimed[0]


async def rescue(broker: Broker, clock: FakeClock, *, limit: int) -> RescueReport:
    """One rescue pass as a worker's maintenance runs it: reclaim, then settle by the policy."""
    return await policy.rescue(broker, limit=limit, lease=LEASE, now=clock.now())


async def get_one(broker: Broker, job_id: JobId) -> Job:
    """The stored job `job_id`; fails the test if it is gone."""
    jobs = await broker.get([job_id])
    assert len(jobs) == 1, f"job {job_id} is not stored"
    return jobs[0]


async def states_of(broker: Broker, job_ids: list[JobId]) -> list[str]:
    """The state of each job, in the order asked ("missing" for a job not stored)."""
    by_id = {job.id: job.state for job in await broker.get(job_ids)}
    return [str(by_id.get(job_id, "missing")) for job_id in job_ids]
