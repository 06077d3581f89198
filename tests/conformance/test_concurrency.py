"""Concurrent claimers: two claims never return the same job, within one broker object or,
for brokers shared between processes, across broker objects on the same storage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from errands.brokers.contract import Broker, Claimed, ClaimOptions
from errands.job import JobId, JobState
from errands.outcome import Completed
from errands.testing import FakeClock

from .conftest import LEASE, enqueue, make_broker, spec


async def drain(broker: Broker, worker_id: str, ran: list[JobId]) -> None:
    """Claim three at a time and complete each, until a claim comes back empty."""
    while claimed := await broker.claim(
        ClaimOptions(["default"], n=3, lease=LEASE, worker_id=worker_id)
    ):
        ran.extend(c.job.id for c in claimed)
        applied = await broker.finish([Completed(c.lease, result=b"") for c in claimed])
        assert applied == [True] * len(claimed)


def claimed_ids(batches: list[list[Claimed]]) -> list[JobId]:
    return [c.job.id for batch in batches for c in batch]


async def test_concurrent_claims_never_return_the_same_job(broker: Broker) -> None:
    job_ids = await enqueue(broker, *[spec() for _ in range(50)])
    batches = await asyncio.gather(
        *[
            broker.claim(ClaimOptions(["default"], n=7, lease=LEASE, worker_id=f"w{i}"))
            for i in range(10)
        ]
    )
    got = claimed_ids(list(batches))
    assert len(got) == len(set(got))
    assert sorted(got) == sorted(job_ids)  # 10 claims of 7 have room for all 50


async def test_concurrent_claimers_run_every_job_exactly_once(broker: Broker) -> None:
    job_ids = await enqueue(broker, *[spec() for _ in range(60)])
    ran: list[JobId] = []
    await asyncio.gather(*[drain(broker, f"w{i}", ran) for i in range(5)])
    assert sorted(ran) == sorted(job_ids)
    jobs = await broker.get(job_ids)
    assert {(job.state, job.attempt) for job in jobs} == {(JobState.COMPLETED, 1)}


@pytest.mark.needs("cross_process")
async def test_two_brokers_on_one_database_never_claim_the_same_job(
    broker: Broker, broker_kind: str, clock: FakeClock, tmp_path: Path
) -> None:
    other = make_broker(broker_kind, clock, tmp_path)  # the same storage as `broker`
    await other.open()
    try:
        job_ids = await enqueue(broker, *[spec() for _ in range(40)])
        batches = await asyncio.gather(
            *[
                (broker if i % 2 else other).claim(
                    ClaimOptions(["default"], n=5, lease=LEASE, worker_id=f"w{i}")
                )
                for i in range(10)
            ]
        )
        got = claimed_ids(list(batches))
        assert len(got) == len(set(got))
        assert sorted(got) == sorted(job_ids)
        assert {job.state for job in await other.get(job_ids)} == {JobState.RUNNING}
    finally:
        await other.close()


@pytest.mark.needs("cross_process")
async def test_two_brokers_on_one_database_each_finish_only_their_own_leases(
    broker: Broker, broker_kind: str, clock: FakeClock, tmp_path: Path
) -> None:
    other = make_broker(broker_kind, clock, tmp_path)
    await other.open()
    try:
        job_ids = await enqueue(other, *[spec() for _ in range(30)])
        ran: list[JobId] = []
        await asyncio.gather(
            drain(broker, "a1", ran),
            drain(other, "b1", ran),
            drain(broker, "a2", ran),
            drain(other, "b2", ran),
        )
        assert sorted(ran) == sorted(job_ids)
        assert {job.state for job in await broker.get(job_ids)} == {JobState.COMPLETED}
    finally:
        await other.close()
