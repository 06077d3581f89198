"""The RabbitMQ broker beyond the shared contract: no false success when RabbitMQ refuses, a
ticket acked only once its job is finished, dead letters in `<prefix>.dead`, and delays through
the delay queues under the real clock. Runs on the session vhost of tests/brokers/registry.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import aio_pika
import pytest

from errands.brokers import from_url
from errands.brokers.contract import ClaimOptions
from errands.brokers.rabbitmq.broker import RabbitMQBroker
from errands.brokers.rabbitmq.url import parse_url
from errands.brokers.sqlite.broker import SQLiteBroker
from errands.clock import SystemClock
from errands.errors import BrokerUnavailable
from errands.job import AttemptError, ErrorKind, FailReason, JobSpec, JobState, new_job_id
from errands.outcome import Completed, Failed
from errands.testing import FakeClock
from tests.brokers.registry import REGISTRY
from tests.conftest import require_service

LEASE = timedelta(seconds=30)
ENTRY = REGISTRY["rabbitmq"]


def spec(**fields: object) -> JobSpec:
    return JobSpec(
        id=new_job_id(),
        task="noop",
        queue="default",
        payload=b'{"v":1,"args":[]}',
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    why = ENTRY.unavailable()
    if why is not None:
        require_service("rabbitmq", False, why)
    made = ENTRY.url(tmp_path)
    yield made
    ENTRY.cleanup(made)


async def opened(url: str, clock: FakeClock | SystemClock) -> RabbitMQBroker:
    broker = from_url(url, clock=clock)
    assert isinstance(broker, RabbitMQBroker)
    await broker.open()
    return broker


async def ready_count(url: str, queue: str) -> int:
    """Messages ready in `queue`, by a passive declare on a connection of its own."""
    connection = await aio_pika.connect(parse_url(url).connect)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        count = declared.declaration_result.message_count
        assert count is not None
        return count
    finally:
        await connection.close()


async def test_enqueue_while_rabbitmq_refuses_raises_and_stores_nothing(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'errands.db'}"
    url = f"amqp://guest:guest@127.0.0.1:1/%2F?timeout=1&store={quote(store, safe='')}"
    broker = from_url(url, clock=SystemClock())
    with pytest.raises(BrokerUnavailable, match=r"RabbitMQ at amqp://127\.0\.0\.1:1/"):
        await broker.open()
    try:
        with pytest.raises(BrokerUnavailable):
            await broker.enqueue_many([spec(), spec()])
        assert "guest:guest" not in broker.location
    finally:
        await broker.close()
    direct = SQLiteBroker(tmp_path / "errands.db")
    await direct.open()
    try:
        assert (await direct.counts()).by_queue == {}
    finally:
        await direct.close()


async def test_a_ticket_is_acked_only_once_its_job_is_finished(url: str) -> None:
    clock = FakeClock()
    broker = await opened(url, clock)
    main = broker.main_name("default")
    try:
        [enqueued] = await broker.enqueue_many([spec()])
        assert await ready_count(url, main) == 1
        [claimed] = await broker.claim(ClaimOptions(["default"], 1, LEASE, "w1"))
        assert claimed.job.id == enqueued.job_id
        assert await ready_count(url, main) == 0  # held unacked by this broker
    finally:
        await broker.close()  # a worker gone before finish: its ticket comes back
    assert await ready_count(url, main) == 1

    broker = await opened(url, clock)
    try:
        clock.advance(LEASE * 2)
        # the job is still running in the store: the old ticket finds nothing until rescued
        [rescued] = await broker.reclaim(limit=10, lease=LEASE)
        assert await broker.finish([Completed(rescued.lease, result=b"r")]) == [True]
    finally:
        await broker.close()
    assert await ready_count(url, main) == 1  # an orphan now: finish acks only what it holds

    broker = await opened(url, clock)
    try:
        [job_id] = [e.job_id for e in await broker.enqueue_many([spec()])]
        clock.advance(timedelta(seconds=10))  # both tickets old: the extra one is dropped
        [first] = await broker.claim(ClaimOptions(["default"], 5, LEASE, "w1"))
        assert first.job.id == job_id
        assert await ready_count(url, main) == 0
        assert await broker.finish([Completed(first.lease, result=b"r")]) == [True]
    finally:
        await broker.close()
    assert await ready_count(url, main) == 0  # acked at finish: nothing comes back


async def test_a_failed_job_is_dead_lettered_with_its_reason(url: str) -> None:
    broker = await opened(url, FakeClock())
    try:
        [enqueued] = await broker.enqueue_many([spec()])
        [claimed] = await broker.claim(ClaimOptions(["default"], 1, LEASE, "w1"))
        error = AttemptError(
            attempt=1, kind=ErrorKind.EXCEPTION, type="ValueError", message="bad input"
        )
        outcome = Failed(claimed.lease, reason=FailReason.ERROR, error=error)
        assert await broker.finish([outcome]) == [True]
        assert (await broker.get([enqueued.job_id]))[0].state == JobState.FAILED
        dead = broker.dead_name
    finally:
        await broker.close()
    assert await ready_count(url, dead) == 1
    connection = await aio_pika.connect(parse_url(url).connect)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(dead, passive=True)
        message = await queue.get(no_ack=True)
        assert message is not None
        assert message.headers["x-errands-reason"] == "error"
        assert message.headers["x-errands-error"] == "bad input"
        assert message.headers["x-errands-job"] == str(enqueued.job_id)
        assert json.loads(message.body)["reason"] == "error"
    finally:
        await connection.close()


async def test_a_delayed_job_goes_through_a_delay_queue_and_starts_on_time(url: str) -> None:
    clock = SystemClock()
    broker = await opened(url, clock)
    try:
        due = clock.now() + timedelta(seconds=2.5)
        [enqueued] = await broker.enqueue_many([spec(scheduled_at=due)])
        # 2.5 s: the 2 s bucket, then 0.5 s held in the process
        assert await ready_count(url, broker.delay_name("default", 2000)) == 1
        assert await ready_count(url, broker.main_name("default")) == 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        claimed = []
        while not claimed and loop.time() < deadline:
            await broker.wait_ready(["default"], timedelta(seconds=1))
            claimed = await broker.claim(ClaimOptions(["default"], 1, LEASE, "w1"))
        started = clock.now()
        assert [c.job.id for c in claimed] == [enqueued.job_id]
        assert due <= started < due + timedelta(seconds=1), started - due
    finally:
        await broker.close()


def test_prefetch_is_a_positive_count_or_left_to_the_claims() -> None:
    store = quote("sqlite:///errands.db", safe="")
    assert parse_url(f"amqp://h/%2F?store={store}").prefetch is None
    assert parse_url(f"amqp://h/%2F?store={store}&prefetch=50").prefetch == 50
    assert "prefetch" not in parse_url(f"amqp://h/%2F?store={store}&prefetch=50").connect
    for bad in ("0", "-1", "x", "65536"):
        with pytest.raises(ValueError, match="prefetch"):
            parse_url(f"amqp://h/%2F?store={store}&prefetch={bad}")


async def test_a_consumer_holds_no_more_tickets_than_its_prefetch(url: str) -> None:
    broker = await opened(f"{url}&prefetch=3", FakeClock())
    main = broker.main_name("default")
    try:
        await broker.enqueue_many([spec() for _ in range(10)])
        [claimed] = await broker.claim(ClaimOptions(["default"], 1, LEASE, "w1"))
        assert await ready_count(url, main) == 7  # one running, two buffered for next claims
        more = await broker.claim(ClaimOptions(["default"], 2, LEASE, "w1"))
        assert len(more) == 2
        assert await ready_count(url, main) == 7  # taken from the buffer: the window is full
        done = [claimed, *more]
        assert await broker.finish([Completed(c.lease, result=b"r") for c in done]) == [True] * 3
        # Acked: RabbitMQ refills the window from the queue, on its own time (no event to
        # await from the server's side; polled with a deadline).
        deadline = asyncio.get_running_loop().time() + 5
        while (left := await ready_count(url, main)) > 4:
            assert asyncio.get_running_loop().time() < deadline, f"{left} still ready"
            await asyncio.sleep(0.01)
        assert left == 4
    finally:
        await broker.close()
    assert await ready_count(url, main) == 7  # the window's tickets went back


async def test_a_job_whose_ticket_another_worker_holds_is_claimed_all_the_same(url: str) -> None:
    clock = FakeClock()
    holder, other = await opened(url, clock), await opened(url, clock)
    try:
        [first, second] = [e.job_id for e in await holder.enqueue_many([spec(), spec()])]
        [mine] = await holder.claim(ClaimOptions(["default"], 1, LEASE, "w1"))  # window: both
        assert await ready_count(url, holder.main_name("default")) == 0
        [theirs] = await other.claim(ClaimOptions(["default"], 1, LEASE, "w2"))
        assert {mine.job.id, theirs.job.id} == {first, second}
        assert await other.finish([Completed(theirs.lease, result=b"r")]) == [True]
        assert await holder.claim(ClaimOptions(["default"], 1, LEASE, "w1")) == []
    finally:
        await holder.close()
        await other.close()
