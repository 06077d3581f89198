"""The PostgreSQL broker beyond the shared contract: migrations (repeated, and raced by
processes), the server's clock, schemas side by side, wake-ups by LISTEN/NOTIFY (and a listener
that the server ends), connections the server ends, the maintenance leader, and what it raises
when there is no server. Each test has a schema of its own on the machine's PostgreSQL, which
is never stopped or reconfigured here: connections are ended with pg_terminate_backend."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("psycopg")

import psycopg

from errands.brokers.contract import Claimed, ClaimOptions
from errands.brokers.postgres import pool
from errands.brokers.postgres.broker import PostgresBroker
from errands.brokers.postgres.notices import Notices
from errands.brokers.postgres.sql import MIGRATIONS
from errands.brokers.postgres.url import parse_url
from errands.clock import SystemClock
from errands.errors import BrokerError, BrokerUnavailable
from errands.job import JobSpec, JobState, new_job_id
from errands.outcome import Completed
from tests.brokers.registry import POSTGRES_URL, REGISTRY
from tests.conftest import require_service

ENTRY = REGISTRY["postgres"]
LEASE = timedelta(seconds=30)
ROOT = Path(__file__).resolve().parents[2]
BOUND = 10.0  # real seconds an event-driven wait must beat; generous for slow machines


def spec(queue: str = "default", **fields: object) -> JobSpec:
    return JobSpec(id=new_job_id(), task="noop", queue=queue, payload=b"{}", **fields)  # type: ignore[arg-type]


def sql(query: str, *params: object) -> list[tuple[object, ...]]:
    """Run one statement on the test database, outside any broker."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        cursor = connection.execute(query, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """A URL on a schema of this test's own, dropped after it."""
    why = ENTRY.unavailable()
    if why is not None:
        require_service("postgres", False, why)
    made = ENTRY.url(tmp_path)
    yield made
    ENTRY.cleanup(made)


@pytest.fixture
async def broker(url: str) -> AsyncIterator[PostgresBroker]:
    """An opened broker on the real clock (the server's time, real wake-ups)."""
    opened = PostgresBroker(url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def claim(broker: PostgresBroker, n: int = 1, queue: str = "default") -> list[Claimed]:
    return await broker.claim(ClaimOptions([queue], n=n, lease=LEASE, worker_id="w1"))


# -- migrations ------------------------------------------------------------------------------


def applied(schema: str) -> list[tuple[object, ...]]:
    return sql(f'SELECT version, name FROM "{schema}".migrations ORDER BY version')


async def test_the_schema_is_created_and_migrated_once_however_often_it_is_opened(
    url: str,
) -> None:
    first = PostgresBroker(url)
    await first.open()
    await first.close()
    second = PostgresBroker(url)
    await second.open()
    await second.migrate()
    await second.close()

    expected = [(m.version, m.name) for m in MIGRATIONS]
    assert applied(first.schema) == expected
    tables = sql(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", first.schema
    )
    assert [name for (name,) in tables] == [
        "bindings",
        "dependencies",
        "exchanges",
        "jobs",
        "limit_keys",
        "migrations",
        "queues",
        "schedules",
        "workers",
    ]


MIGRATOR = """
import asyncio, sys
from errands.brokers import from_url

async def main() -> None:
    broker = from_url(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.readline()  # the go signal, sent to every process at once
    await broker.migrate()
    print("migrated", flush=True)

asyncio.run(main())
"""


def test_processes_racing_to_migrate_a_new_schema_all_succeed_and_apply_it_once(
    url: str,
) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATOR, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(6)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()

    assert [child.returncode for child in children] == [0] * 6, outputs
    schema = PostgresBroker(url).schema
    assert applied(schema) == [(m.version, m.name) for m in MIGRATIONS]


# -- the server's clock, schemas side by side, atomic batches --------------------------------


class HourAheadClock(SystemClock):
    """A host whose clock is an hour ahead; still a system clock, so the broker keeps to the
    server's."""

    def now(self) -> datetime:
        return super().now() + timedelta(hours=1)


async def test_on_a_system_clock_every_instant_is_the_servers_not_the_hosts(url: str) -> None:
    broker = PostgresBroker(url, clock=HourAheadClock())
    await broker.open()
    try:
        [stored] = await broker.enqueue_many([spec()])
        [claimed] = await claim(broker)
        [(server_now,)] = sql("SELECT now()")
    finally:
        await broker.close()

    assert isinstance(server_now, datetime)
    assert abs(server_now - claimed.job.enqueued_at) < timedelta(seconds=30)  # type: ignore[operator]
    assert claimed.job.id == stored.job_id
    assert abs(claimed.lease.expires_at - (server_now + LEASE)) < timedelta(seconds=30)
    assert claimed.job.enqueued_at is not None
    assert claimed.job.enqueued_at.utcoffset() == timedelta(0)


async def test_two_schemas_of_one_database_keep_their_jobs_apart(tmp_path: Path) -> None:
    why = ENTRY.unavailable()
    if why is not None:
        require_service("postgres", False, why)
    shop_url, mail_url = ENTRY.url(tmp_path / "shop"), ENTRY.url(tmp_path / "mail")
    shop, mail = PostgresBroker(shop_url), PostgresBroker(mail_url)
    try:
        await shop.open()
        await mail.open()
        await shop.enqueue_many([spec(), spec()])
        await mail.enqueue_many([spec()])

        assert (await shop.counts()).total(JobState.AVAILABLE) == 2
        assert (await mail.counts()).total(JobState.AVAILABLE) == 1
        assert len(await claim(mail, n=10)) == 1
    finally:
        await shop.close()
        await mail.close()
        ENTRY.cleanup(shop_url)
        ENTRY.cleanup(mail_url)


async def test_a_batch_with_one_bad_spec_stores_nothing(broker: PostgresBroker) -> None:
    good, bad = spec(), spec(priority=2**40)  # past PostgreSQL's integer

    with pytest.raises(BrokerError, match="out of range"):
        await broker.enqueue_many([good, bad])

    assert await broker.get([good.id, bad.id]) == []
    assert (await broker.counts()).total(JobState.AVAILABLE) == 0


# -- wake-ups ----------------------------------------------------------------------------------


async def until_listening(broker: PostgresBroker) -> Notices:
    """The broker's listener, once it listens (a waiter started it)."""
    deadline = time.monotonic() + BOUND
    while broker.notices is None or not broker.notices.listening:
        assert time.monotonic() < deadline, "the listener never listened"
        await asyncio.sleep(0.01)
    return broker.notices


async def test_a_job_enqueued_through_another_broker_wakes_a_waiter_by_notify(
    broker: PostgresBroker, url: str
) -> None:
    producer = PostgresBroker(url)
    await producer.open()
    try:
        waiter = asyncio.create_task(broker.wait_ready(["default"], timedelta(minutes=5)))
        await until_listening(broker)
        assert not waiter.done()
        began = time.monotonic()
        await producer.enqueue_many([spec()])
        await asyncio.wait_for(waiter, BOUND)
        woke_in = time.monotonic() - began
    finally:
        await producer.close()

    assert woke_in < 1.0  # a notice, not a poll
    listeners = sql(
        "SELECT application_name FROM pg_stat_activity WHERE pid = %s",
        broker.notices.backend_pid,
    )
    assert listeners == [("errands-listen",)]


async def test_a_waiter_for_another_queue_is_not_woken(broker: PostgresBroker) -> None:
    waiter = asyncio.create_task(broker.wait_ready(["mail"], timedelta(seconds=1)))
    for _ in range(20):
        await asyncio.sleep(0)
    await broker.enqueue_many([spec("sms")])
    await asyncio.sleep(0.3)

    assert not waiter.done()
    await asyncio.wait_for(waiter, BOUND)


async def test_a_listener_the_server_ends_comes_back_and_its_waiters_still_wake(
    broker: PostgresBroker, url: str
) -> None:
    [stored] = await broker.enqueue_many([spec()])
    worker = PostgresBroker(url)
    await worker.open()
    try:
        [claimed] = await claim(worker)
        waiter = asyncio.create_task(broker.wait_done([stored.job_id], timedelta(minutes=5)))
        notices = await until_listening(broker)
        killed = notices.backend_pid
        assert sql("SELECT pg_terminate_backend(%s)", killed) == [(True,)]
        deadline = time.monotonic() + BOUND
        while not (notices.listening and notices.backend_pid not in (None, killed)):
            assert time.monotonic() < deadline, "the listener never came back"
            await asyncio.sleep(0.02)
        assert notices.reconnects == 1
        assert not waiter.done()

        await worker.finish([Completed(claimed.lease, result=b"r")])
        [job] = await asyncio.wait_for(waiter, BOUND)
    finally:
        await worker.close()

    assert (job.state, job.result) == (JobState.COMPLETED, b"r")


async def test_closing_the_broker_wakes_its_waiters(broker: PostgresBroker) -> None:
    [stored] = await broker.enqueue_many([spec()])
    waiter = asyncio.create_task(broker.wait_done([stored.job_id], timedelta(minutes=5)))
    for _ in range(50):
        await asyncio.sleep(0.01)

    await broker.close()

    [job] = await asyncio.wait_for(waiter, BOUND)
    assert job.state == JobState.AVAILABLE


# -- connections the server ends, no server ---------------------------------------------------


async def test_pooled_connections_the_server_ended_are_replaced(url: str) -> None:
    name = f"errands-test-{new_job_id()[-12:]}"
    broker = PostgresBroker(f"{url}&application_name={name}")
    await broker.open()
    try:
        await broker.enqueue_many([spec()])
        ended = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"

        assert {done for (done,) in sql(ended, name)} == {True}
        await asyncio.sleep(pool.CHECK_IDLE + 0.2)  # idle: checked before it is handed out
        assert (await broker.counts()).total(JobState.AVAILABLE) == 1

        assert {done for (done,) in sql(ended, name)} == {True}
        failed: list[BrokerUnavailable] = []
        try:  # used a moment ago, so not checked: at most this one call fails
            await broker.counts()
        except BrokerUnavailable as error:
            failed.append(error)
        assert all(broker.location in str(error) for error in failed)
        assert (await broker.counts()).total(JobState.AVAILABLE) == 1
    finally:
        await broker.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_no_server_is_broker_unavailable_naming_the_location() -> None:
    port = free_port()
    broker = PostgresBroker(f"postgresql://postgres:hunter2@127.0.0.1:{port}/test?schema=x")

    began = time.monotonic()
    with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{port}/test") as caught:
        await broker.open()
    await broker.close()

    assert time.monotonic() - began < 5.0
    assert "hunter2" not in str(caught.value)


# -- the maintenance leader --------------------------------------------------------------------


@contextlib.contextmanager
def held_elsewhere(*lock_keys: int) -> Iterator[None]:
    """Another 'worker' holding the advisory locks `lock_keys` meanwhile."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        for key in lock_keys:
            connection.execute("SELECT pg_advisory_lock(%s)", [key])
        yield
        # Unlocked before the connection closes: a closing session lets go a moment later.
        connection.execute("SELECT pg_advisory_unlock_all()")


async def test_only_the_maintenance_leader_reclaims_promotes_and_prunes(url: str) -> None:
    from errands.testing import FakeClock

    clock = FakeClock()
    broker = PostgresBroker(url, clock=clock)
    await broker.open()
    try:
        [late, due] = await broker.enqueue_many(
            [spec(), spec(scheduled_at=clock.now() + timedelta(minutes=1))]
        )
        [claimed] = await claim(broker)
        assert claimed.job.id == late.job_id
        clock.advance(timedelta(hours=1))
        parsed = parse_url(url)
        with held_elsewhere(parsed.lock_key("reclaim"), parsed.lock_key("promote")):
            assert await broker.reclaim(limit=10, lease=LEASE) == []
            assert await broker.promote(limit=10) == 0

        [taken] = await broker.reclaim(limit=10, lease=LEASE)
        assert taken.job.id == late.job_id
        assert await broker.promote(limit=10) == 1
        assert [j.state for j in await broker.get([due.job_id])] == [JobState.AVAILABLE]

        assert await broker.finish([Completed(taken.lease, result=b"")]) == [True]
        clock.advance(timedelta(hours=1))
        with held_elsewhere(parsed.lock_key("prune")):
            assert await broker.prune(finished_before=clock.now(), limit=10) == 0
        assert await broker.prune(finished_before=clock.now(), limit=10) == 1
    finally:
        await broker.close()


async def test_an_injected_clock_is_stored_to_the_microsecond(url: str) -> None:
    from errands.testing import FakeClock

    clock = FakeClock(datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC))
    broker = PostgresBroker(url, clock=clock)
    await broker.open()
    try:
        [stored] = await broker.enqueue_many([spec()])
        [job] = await broker.get([stored.job_id])
    finally:
        await broker.close()

    assert job.enqueued_at == clock.now()
    assert job.scheduled_at == clock.now()
