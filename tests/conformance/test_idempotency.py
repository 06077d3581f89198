"""Idempotency keys: a known (task, key) returns the existing job, until that job's result
expires; racing producers store one job."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from errands.brokers import from_url
from errands.brokers.contract import Broker, Enqueued
from errands.job import JobId, JobSpec, JobState
from errands.outcome import Completed
from errands.testing import FakeClock

from .conftest import claim_one, enqueue, get_one, spec

ROOT = Path(__file__).resolve().parents[2]


async def stored_count(broker: Broker) -> int:
    counts = await broker.counts()
    return sum(counts.total(state) for state in JobState)


async def test_spec_with_the_key_of_a_waiting_job_returns_that_job_as_a_duplicate(
    broker: Broker,
) -> None:
    [original] = await enqueue(broker, spec(idempotency_key="order-7"))
    again = spec(idempotency_key="order-7")
    assert await broker.enqueue_many([again]) == [Enqueued(original, duplicate=True)]
    assert await broker.get([again.id]) == []
    assert await stored_count(broker) == 1


async def test_duplicate_keys_within_one_batch_store_one_job(broker: Broker) -> None:
    first, second, other = spec(idempotency_key="k"), spec(idempotency_key="k"), spec()
    enqueued = await broker.enqueue_many([first, second, other])
    assert enqueued == [
        Enqueued(first.id, duplicate=False),
        Enqueued(first.id, duplicate=True),
        Enqueued(other.id, duplicate=False),
    ]
    assert await stored_count(broker) == 2


async def test_key_of_a_running_job_is_still_a_duplicate(broker: Broker) -> None:
    [original] = await enqueue(broker, spec(idempotency_key="k"))
    await claim_one(broker)
    assert await broker.enqueue_many([spec(idempotency_key="k")]) == [
        Enqueued(original, duplicate=True)
    ]
    assert (await get_one(broker, original)).state == JobState.RUNNING


async def test_key_of_a_completed_job_is_a_duplicate_until_its_result_expires(
    broker: Broker, clock: FakeClock
) -> None:
    [original] = await enqueue(broker, spec(idempotency_key="k", result_ttl=timedelta(hours=1)))
    claimed = await claim_one(broker)
    await broker.finish([Completed(claimed.lease, result=b"1")])
    clock.advance(timedelta(minutes=59))
    assert await broker.enqueue_many([spec(idempotency_key="k")]) == [
        Enqueued(original, duplicate=True)
    ]
    clock.advance(timedelta(minutes=1, seconds=1))
    fresh = spec(idempotency_key="k")
    assert await broker.enqueue_many([fresh]) == [Enqueued(fresh.id, duplicate=False)]
    assert (await get_one(broker, fresh.id)).state == JobState.AVAILABLE


async def test_specs_without_a_key_are_never_duplicates(broker: Broker) -> None:
    specs = [spec(), spec()]
    assert await broker.enqueue_many(specs) == [Enqueued(s.id) for s in specs]
    assert await stored_count(broker) == 2


async def test_different_keys_make_different_jobs(broker: Broker) -> None:
    specs = [spec(idempotency_key="a"), spec(idempotency_key="b")]
    assert await broker.enqueue_many(specs) == [Enqueued(s.id) for s in specs]
    stored = await broker.get([s.id for s in specs])
    assert [job.idempotency_key for job in stored] == ["a", "b"]


async def test_keys_are_scoped_to_the_task(broker: Broker) -> None:
    charge, refund = (
        spec(task="charge", idempotency_key="order-7"),
        spec(task="refund", idempotency_key="order-7"),
    )
    assert await broker.enqueue_many([charge, refund]) == [Enqueued(charge.id), Enqueued(refund.id)]
    again = spec(task="refund", idempotency_key="order-7")
    assert await broker.enqueue_many([again]) == [Enqueued(refund.id, duplicate=True)]
    assert await stored_count(broker) == 2


RACER = """
import asyncio, sys
from errands.brokers import from_url
from errands.job import JobSpec

async def main() -> None:
    broker = from_url(sys.argv[1])
    await broker.open()
    mine = JobSpec(
        id=sys.argv[2], task="charge", queue="default", payload=b"{}", idempotency_key="order-7"
    )
    print("ready", flush=True)
    sys.stdin.readline()  # the go signal, sent to every racer at once
    [stored] = await broker.enqueue_many([mine])
    print(stored.job_id, flush=True)
    await broker.close()

asyncio.run(main())
"""
RACERS = 8


def race_in_threads_and_processes(url: str, contenders: list[JobSpec]) -> list[JobId]:
    """Half the contenders enqueue from threads, half from processes, each through its own
    broker on the storage of `url`, all released at one instant; returns the ids they got."""
    threads, procs = contenders[: RACERS // 2], contenders[RACERS // 2 :]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, url, one.id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for one in procs
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        gate = threading.Barrier(len(threads) + 1)

        async def enqueue_in_thread(one: JobSpec) -> JobId:
            own = from_url(url)
            await own.open()
            try:
                gate.wait()
                [stored] = await own.enqueue_many([one])
                return stored.job_id
            finally:
                await own.close()

        with ThreadPoolExecutor(len(threads)) as pool:
            futures = [pool.submit(asyncio.run, enqueue_in_thread(one)) for one in threads]
            gate.wait()
            for child in children:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            got = [future.result(timeout=60) for future in futures]
        for child in children:
            out, _ = child.communicate(timeout=60)
            assert child.returncode == 0
            got.append(out.strip())
        return got
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()


async def test_eight_producers_racing_on_one_key_store_one_job_and_all_get_its_id(
    broker: Broker, broker_url: str
) -> None:
    contenders = [spec(task="charge", idempotency_key="order-7") for _ in range(RACERS)]
    if broker.capabilities.cross_process:
        got = await asyncio.to_thread(race_in_threads_and_processes, broker_url, contenders)
    else:  # one process only: the racers are concurrent calls on its one broker
        replies = await asyncio.gather(*[broker.enqueue_many([one]) for one in contenders])
        got = [stored.job_id for [stored] in replies]
    assert len(got) == RACERS
    assert len(set(got)) == 1
    assert got[0] in {one.id for one in contenders}
    assert await stored_count(broker) == 1
    assert (await get_one(broker, got[0])).idempotency_key == "order-7"
