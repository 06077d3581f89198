"""Rate and concurrency limits, enforced by the claim: a held job stays available and other
jobs are handed out instead; rates follow the broker's clock (GCRA); a running job counts
against its keys while its lease is live."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import pytest

from errands.brokers.contract import Broker, Claimed, ClaimOptions
from errands.job import JobId, JobState
from errands.limits import Limit, parse_rate, queue_key
from errands.outcome import Completed
from errands.testing import FakeClock

from .conftest import LEASE, enqueue, get_one, make_broker, rescue, spec

pytestmark = pytest.mark.needs("limits")

SECOND = timedelta(seconds=1)


def rated(key: str, rate: str = "1/s", burst: int = 1) -> Limit:
    """A rate limit on `key`."""
    return Limit(f"task:{key}", period_us=parse_rate(rate), burst=burst)


def capped(key: str, concurrency: int) -> Limit:
    """A concurrency limit on `key`."""
    return Limit(f"task:{key}", concurrency=concurrency)


async def claim(
    broker: Broker, n: int = 10, queues: tuple[str, ...] = ("default",)
) -> list[Claimed]:
    """One claim of up to `n` jobs."""
    return await broker.claim(ClaimOptions(queues, n=n, lease=LEASE, worker_id="w1"))


async def claimed_ids(broker: Broker, n: int = 10) -> list[JobId]:
    """The ids one claim of up to `n` jobs hands out, in claim order."""
    return [c.job.id for c in await claim(broker, n)]


async def test_a_rate_limited_key_starts_one_job_per_period_on_the_brokers_clock(
    broker: Broker, clock: FakeClock
) -> None:
    job_ids = await enqueue(broker, *[spec(limits=(rated("mail"),)) for _ in range(4)])
    assert await claimed_ids(broker) == job_ids[:1]
    assert await claimed_ids(broker) == []
    clock.advance(SECOND - timedelta(milliseconds=1))
    assert await claimed_ids(broker) == []
    clock.advance(timedelta(milliseconds=1))
    assert await claimed_ids(broker) == job_ids[1:2]
    clock.advance(timedelta(seconds=10))  # idle spells do not bank starts (burst 1)
    assert await claimed_ids(broker) == job_ids[2:3]
    assert await claimed_ids(broker) == []


async def test_starts_over_a_window_never_exceed_the_rate(broker: Broker, clock: FakeClock) -> None:
    await enqueue(broker, *[spec(limits=(rated("api", "10/s"),)) for _ in range(40)])
    started = 0
    for _ in range(200):  # two seconds in 10 ms steps, claiming at every step
        started += len(await claim(broker))
        clock.advance(timedelta(milliseconds=10))
    assert started == 20


async def test_a_burst_lets_that_many_start_back_to_back_after_an_idle_spell(
    broker: Broker, clock: FakeClock
) -> None:
    await enqueue(broker, *[spec(limits=(rated("mail", "1/s", burst=3),)) for _ in range(6)])
    assert len(await claim(broker)) == 3
    assert await claim(broker) == []
    clock.advance(SECOND)
    assert len(await claim(broker)) == 1
    clock.advance(10 * SECOND)
    assert len(await claim(broker)) == 2  # the rest: the burst again would allow three


async def test_a_held_job_stays_available_while_other_jobs_are_claimed(
    broker: Broker,
) -> None:
    [first, held, free] = await enqueue(
        broker, spec(limits=(rated("mail", "1/m"),)), spec(limits=(rated("mail", "1/m"),)), spec()
    )
    assert sorted(await claimed_ids(broker)) == sorted([first, free])
    late = (await enqueue(broker, spec()))[0]
    assert await claimed_ids(broker) == [late]
    stored = await get_one(broker, held)
    assert (stored.state, stored.attempt) == (JobState.AVAILABLE, 0)


async def test_a_concurrency_limit_is_never_exceeded_and_frees_on_finish(broker: Broker) -> None:
    await enqueue(broker, *[spec(limits=(capped("report", 2),)) for _ in range(5)])
    running = await claim(broker)
    assert len(running) == 2
    assert await claim(broker) == []
    assert await broker.finish([Completed(running[0].lease, result=b"")]) == [True]
    again = await claim(broker)
    assert len(again) == 1
    assert await claim(broker) == []
    counts = await broker.counts()
    assert counts.by_queue["default"][JobState.RUNNING] == 2


async def test_a_job_whose_lease_lapsed_stops_counting_and_its_retry_waits_its_turn(
    broker: Broker, clock: FakeClock
) -> None:
    [crashed, waiting] = await enqueue(
        broker, *[spec(limits=(capped("report", 1),)) for _ in range(2)]
    )
    assert await claimed_ids(broker) == [crashed]
    assert await claimed_ids(broker) == []
    clock.advance(LEASE + SECOND)  # its worker died: the lease lapses unextended
    assert await claimed_ids(broker) == [waiting]
    report = await rescue(broker, clock, limit=10)
    assert report.retried == [crashed]
    assert await claimed_ids(broker) == []  # the retry is held while `waiting` runs
    assert (await get_one(broker, crashed)).state in (JobState.AVAILABLE, JobState.RETRYABLE)


async def test_keyed_limits_hold_each_key_apart(broker: Broker) -> None:
    specs = [spec(limits=(capped(f"charge:{customer}", 1),)) for customer in "aabbc"]
    job_ids = await enqueue(broker, *specs)
    assert sorted(await claimed_ids(broker)) == sorted([job_ids[0], job_ids[2], job_ids[4]])
    assert await claimed_ids(broker) == []


async def test_a_flooding_key_does_not_starve_the_other_keys(
    broker: Broker, clock: FakeClock
) -> None:
    await enqueue(broker, *[spec(limits=(rated("flood", "1/h"),)) for _ in range(300)])
    others = await enqueue(broker, *[spec(limits=(rated(f"k{i}", "1/h"),)) for i in range(6)])
    got: list[JobId] = []
    for _ in range(4):
        got += await claimed_ids(broker, n=2)
        clock.advance(SECOND)
    assert set(others) <= set(got)
    assert len(got) == 7  # one of the flood, and every other key's job


async def test_a_queue_limit_caps_every_task_of_the_queue(broker: Broker, clock: FakeClock) -> None:
    queue = (Limit(queue_key("mail"), concurrency=2),)
    await enqueue(
        broker,
        *[spec(task="a", queue="mail", limits=queue) for _ in range(3)],
        *[spec(task="b", queue="mail", limits=queue) for _ in range(3)],
        spec(queue="other"),
    )
    assert len(await claim(broker, queues=("mail", "other"))) == 3
    assert await claim(broker, queues=("mail",)) == []


async def test_a_queue_rate_and_a_task_limit_both_hold(broker: Broker, clock: FakeClock) -> None:
    rate = Limit(queue_key("mail"), period_us=parse_rate("2/s"))
    sends = [spec(task="send", queue="mail", limits=(capped("send", 1), rate)) for _ in range(3)]
    await enqueue(
        broker, *sends, *[spec(task="other", queue="mail", limits=(rate,)) for _ in range(3)]
    )
    [first] = await claim(broker, queues=("mail",))  # the queue's rate: one start per 500 ms
    assert first.job.task == "send"
    assert await claim(broker, queues=("mail",)) == []
    clock.advance(timedelta(milliseconds=500))
    [second] = await claim(broker, queues=("mail",))
    assert second.job.task == "other"  # the next send waits for the running one
    assert await broker.finish([Completed(first.lease, result=b"")]) == [True]
    clock.advance(timedelta(milliseconds=500))
    [third] = await claim(broker, queues=("mail",))
    assert third.job.task == "send"


async def test_a_rate_state_survives_jobs_of_other_queues(broker: Broker, clock: FakeClock) -> None:
    await enqueue(
        broker,
        spec(queue="a", limits=(rated("shared", "1/s"),)),
        spec(queue="b", limits=(rated("shared", "1/s"),)),
    )
    assert len(await claim(broker, queues=("a",))) == 1
    assert await claim(broker, queues=("b",)) == []
    clock.advance(SECOND)
    assert len(await claim(broker, queues=("b",))) == 1


async def test_concurrent_claims_never_pass_a_concurrency_limit(broker: Broker) -> None:
    await enqueue(broker, *[spec(limits=(capped("report", 3),)) for _ in range(30)])
    batches = await asyncio.gather(*[claim(broker, n=2) for _ in range(10)])
    assert sum(len(batch) for batch in batches) == 3


@pytest.mark.needs("cross_process")
async def test_brokers_on_one_storage_share_the_limits(
    broker: Broker, broker_kind: str, clock: FakeClock, tmp_path: Path
) -> None:
    others = [make_broker(broker_kind, clock, tmp_path) for _ in range(3)]
    for other in others:
        await other.open()
    try:
        await enqueue(
            broker,
            *[spec(limits=(capped("report", 2),)) for _ in range(20)],
            *[spec(limits=(rated("mail", "1/h", burst=3),)) for _ in range(20)],
        )
        batches = await asyncio.gather(
            *[
                b.claim(ClaimOptions(["default"], 4, LEASE, f"w{i}"))
                for i, b in enumerate([broker, *others] * 3)
            ]
        )
        tasks = [c.job for batch in batches for c in batch]
        assert len(tasks) == 5  # two under the cap, three in the burst
    finally:
        for other in others:
            await other.close()


async def test_wait_ready_does_not_return_for_jobs_their_limits_hold(broker: Broker) -> None:
    await enqueue(broker, *[spec(limits=(capped("report", 1),)) for _ in range(2)])
    assert len(await claim(broker)) == 1
    began = time.monotonic()
    await broker.wait_ready(["default"], timedelta(milliseconds=300))
    assert time.monotonic() - began >= 0.25
