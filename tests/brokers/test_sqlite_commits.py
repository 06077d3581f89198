"""How the SQLite broker commits: concurrent enqueues share one durable commit (group commit),
and writes whose loss costs only a repeat (claims, extends, reclaims) skip the fsync."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from errands.brokers.contract import ClaimOptions, Enqueued
from errands.brokers.sqlite.broker import SQLiteBroker
from errands.errors import BrokerFull
from errands.job import JobSpec, new_job_id

FULL, NORMAL = 2, 1  # PRAGMA synchronous


def spec(key: str | None = None) -> JobSpec:
    return JobSpec(
        id=new_job_id(), task="noop", queue="default", payload=b"{}", idempotency_key=key
    )


def synchronous(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA synchronous").fetchone()[0])


async def test_concurrent_enqueues_share_commits_and_each_gets_its_own_replies(
    broker: SQLiteBroker,
) -> None:
    calls = [[spec(), spec()] for _ in range(40)]
    before = broker._group.groups

    replies = await asyncio.gather(*[broker.enqueue_many(specs) for specs in calls])

    assert replies == [[Enqueued(s.id) for s in specs] for specs in calls]
    assert broker._group.groups - before < len(calls)  # some calls shared a commit
    stored = await broker.get([s.id for specs in calls for s in specs])
    assert len(stored) == 80


async def test_a_key_taken_by_an_earlier_call_of_the_same_group_is_a_duplicate(
    broker: SQLiteBroker,
) -> None:
    first, second = spec("order-7"), spec("order-7")

    one, two = await asyncio.gather(broker.enqueue_many([first]), broker.enqueue_many([second]))

    assert (one, two) == ([Enqueued(first.id)], [Enqueued(first.id, duplicate=True)])


async def test_a_call_that_fails_does_not_fail_the_calls_that_shared_its_group(
    tmp_path: Path,
) -> None:
    capped = SQLiteBroker(tmp_path / "capped.db", max_page_count=40)
    await capped.open()
    try:
        huge = [JobSpec(id=new_job_id(), task="t", queue="q", payload=b"x" * 400_000)]
        small = [spec()]
        results = await asyncio.gather(
            capped.enqueue_many(small), capped.enqueue_many(huge), return_exceptions=True
        )
        assert results[0] == [Enqueued(small[0].id)]
        assert isinstance(results[1], BrokerFull)
        assert [job.id for job in await capped.get([small[0].id])] == [small[0].id]
    finally:
        await capped.close()


async def test_claims_and_extends_skip_the_fsync_and_outcomes_and_enqueues_keep_it(
    broker: SQLiteBroker,
) -> None:
    assert await broker._db.write_lightly(synchronous) == NORMAL
    assert await broker._db.write(synchronous) == FULL
    await broker.enqueue_many([spec()])
    await broker.claim(ClaimOptions(["default"], 1, timedelta(seconds=30), "w"))
    assert await broker._db.write(synchronous) == FULL  # back to durable for the next write


async def test_a_database_opened_with_normal_commits_never_syncs_more(tmp_path: Path) -> None:
    relaxed = SQLiteBroker(tmp_path / "relaxed.db", synchronous="NORMAL")
    await relaxed.open()
    try:
        assert await relaxed._db.write(synchronous) == NORMAL
        assert await relaxed._db.write_lightly(synchronous) == NORMAL
    finally:
        await relaxed.close()


def test_a_blocking_enqueue_runs_in_the_calling_thread(broker: SQLiteBroker) -> None:
    threads: list[str] = []
    writes = broker._db.write_here

    def noting(*args: object, **kwargs: object) -> object:
        threads.append(threading.current_thread().name)
        return writes(*args, **kwargs)  # type: ignore[arg-type]

    broker._db.write_here = noting  # type: ignore[method-assign]
    one = spec()

    assert broker.enqueue_many_blocking([one]) == [Enqueued(one.id)]
    assert threads == [threading.current_thread().name]


async def test_blocking_enqueues_from_many_threads_share_commits_and_keep_their_replies(
    broker: SQLiteBroker,
) -> None:
    calls = [[spec(), spec()] for _ in range(64)]
    start = threading.Barrier(8)
    before = broker._thread_group.groups

    def produce(mine: list[list[JobSpec]]) -> list[list[Enqueued]]:
        start.wait()
        return [broker.enqueue_many_blocking(specs) for specs in mine]

    with ThreadPoolExecutor(8) as pool:
        shares = [calls[i::8] for i in range(8)]
        replies = await asyncio.gather(
            *[asyncio.wrap_future(pool.submit(produce, share)) for share in shares]
        )

    for share, got in zip(shares, replies, strict=True):
        assert got == [[Enqueued(s.id) for s in specs] for specs in share]
    assert broker._thread_group.groups - before < len(calls)  # some calls shared a commit
    assert len(await broker.get([s.id for specs in calls for s in specs])) == 128


def test_a_blocking_call_that_fails_does_not_fail_the_threads_that_shared_its_group(
    tmp_path: Path,
) -> None:
    capped = SQLiteBroker(tmp_path / "capped.db", max_page_count=40)
    asyncio.run(capped.open())
    try:
        huge = [JobSpec(id=new_job_id(), task="t", queue="q", payload=b"x" * 400_000)]
        smalls = [[spec()] for _ in range(6)]
        start = threading.Barrier(7)

        def produce(specs: list[JobSpec]) -> list[Enqueued] | BaseException:
            start.wait()
            try:
                return capped.enqueue_many_blocking(specs)
            except BrokerFull as error:
                return error

        with ThreadPoolExecutor(7) as pool:
            results = list(pool.map(produce, [huge, *smalls]))

        assert isinstance(results[0], BrokerFull)
        assert results[1:] == [[Enqueued(s[0].id)] for s in smalls]
    finally:
        asyncio.run(capped.close())
