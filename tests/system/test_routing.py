"""Routing through exchanges and publish/subscribe events, as a user sees them, on every broker
(memory included): one job per matching queue or subscriber, in one write, from the topology
stored in the broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import errands
from errands.brokers.contract import JobQuery
from errands.exchanges import EVENT_HEADER
from errands.job import Job
from errands.routing import EVENTS


def shop(url: str, broker: errands.Broker | None = None) -> errands.App:
    """The README's topology: orders by region, an audit queue for everything, and two
    subscribers of order events."""
    app = errands.App(url, broker=broker)
    app.portal.adopt(asyncio.get_running_loop())
    orders = app.exchange("orders", "topic")
    app.bind(orders, "orders-eu", "eu.*")
    app.bind(orders, "orders-us", "us.*")
    app.bind(orders, "audit", "#")

    @app.task(name="ship")
    def ship(order_id: int) -> int:
        return order_id

    @app.subscribe("order.*")
    @app.task(name="mail", queue="mail")
    def mail(order_id: int) -> str:
        return f"mail {order_id}"

    @app.subscribe("order.created")
    @app.task(name="stock")
    def stock(order_id: int) -> str:
        return f"stock {order_id}"

    return app


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[errands.App]:
    """A producer App on the broker under test."""
    made = shop(store_url)
    yield made
    await made.close_async()


async def jobs(app: errands.App) -> list[Job]:
    """Every stored job."""
    return (await app.call_broker(lambda b: b.list_jobs(JobQuery(limit=500)))).jobs


async def test_a_topic_key_gets_a_job_in_every_matching_queue(app: errands.App) -> None:
    handles = (
        await app.registry["ship"]
        .options(exchange="orders", routing_key="eu.paris")
        .enqueue_async(42)
    )
    stored = {job.id: job for job in await jobs(app)}
    assert sorted(stored[h.id].queue for h in handles) == ["audit", "orders-eu"]
    assert {job.task for job in stored.values()} == {"ship"}


async def test_hash_matches_zero_or_more_words_and_star_exactly_one(app: errands.App) -> None:
    ship = app.registry["ship"].options(exchange="orders", routing_key="eu.paris.north")
    assert len(await ship.enqueue_async(1)) == 1  # audit only: eu.* takes one word
    ship = app.registry["ship"].options(exchange="orders", routing_key="us.nyc")
    queues = sorted(job.queue for job in await jobs(app) if job.queue != "audit")
    assert len(await ship.enqueue_async(2)) == 2
    assert queues == []
    assert sorted(job.queue for job in await jobs(app)) == ["audit", "audit", "orders-us"]


async def test_a_key_no_binding_matches_raises_unroutable_and_stores_nothing(
    app: errands.App,
) -> None:
    app.exchange("billing", "direct")
    app.bind("billing", "invoices", "invoice")
    with pytest.raises(errands.Unroutable, match="'refund'"):
        await (
            app.registry["ship"].options(exchange="billing", routing_key="refund").enqueue_async(1)
        )
    assert await jobs(app) == []


async def test_an_exchange_that_drops_unroutable_messages_stores_nothing(app: errands.App) -> None:
    app.exchange("metrics", "direct", unroutable="drop")
    assert (
        await app.registry["ship"].options(exchange="metrics", routing_key="x").enqueue_async(1)
        == []
    )
    assert await jobs(app) == []


async def test_an_unknown_exchange_is_an_error_naming_it(app: errands.App) -> None:
    with pytest.raises(errands.ExchangeNotFound, match="'nope'"):
        await app.registry["ship"].options(exchange="nope").enqueue_async(1)


async def test_fanout_routes_to_every_bound_queue_whatever_the_key(app: errands.App) -> None:
    app.exchange("broadcast", "fanout")
    for queue in ("a", "b", "c"):
        app.bind("broadcast", queue)
    handles = (
        await app.registry["ship"].options(exchange="broadcast", routing_key="z").enqueue_async(1)
    )
    assert len(handles) == 3


async def test_a_batch_of_routed_and_plain_calls_is_one_write(app: errands.App) -> None:
    ship = app.registry["ship"]
    calls = [ship.call(1), ship.options(exchange="orders", routing_key="eu.rome").call(2)]
    handles = await app.enqueue_many_async(calls)
    assert len(handles) == 3
    app.exchange("billing", "direct")
    bad = [ship.call(3), ship.options(exchange="billing", routing_key="none").call(4)]
    with pytest.raises(errands.Unroutable):
        await app.enqueue_many_async(bad)
    assert len(await jobs(app)) == 3  # the plain call of the refused batch was not stored


async def test_a_binding_added_at_runtime_is_seen_by_another_producer(
    app: errands.App, store_url: str
) -> None:
    other = shop(store_url, broker=app.broker if store_url.startswith("memory") else None)
    try:
        await other.exchanges.bind_async("orders", "orders-asia", "asia.*")
        handles = (
            await app.registry["ship"]
            .options(exchange="orders", routing_key="asia.tokyo")
            .enqueue_async(7)
        )
        assert len(handles) == 2
        assert await other.exchanges.unbind_async("orders", "orders-asia", "asia.*")
        assert (
            len(
                await app.registry["ship"]
                .options(exchange="orders", routing_key="asia.tokyo")
                .enqueue_async(8)
            )
            == 1
        )
    finally:
        if not store_url.startswith("memory"):
            await other.close_async()


async def test_publish_makes_one_job_per_subscriber_and_each_runs(app: errands.App) -> None:
    handles = await app.publish_async("order.created", 5)
    stored = {job.id: job for job in await jobs(app)}
    assert sorted(stored[h.id].task for h in handles) == ["mail", "stock"]
    assert {stored[h.id].queue for h in handles} == {"mail", "default"}
    assert await app.run_until_idle_async(queues=["default", "mail"]) == 2
    assert sorted([await h.result_async(timeout=5) for h in handles]) == ["mail 5", "stock 5"]


async def test_a_topic_only_some_subscribers_match_reaches_only_them(app: errands.App) -> None:
    handles = await app.publish_async("order.cancelled", 9)
    assert [(await h.refresh_async()).task for h in handles] == ["mail"]
    job = await handles[0].refresh_async()
    from errands import envelope

    assert envelope.decode(bytes(job.payload)).headers[EVENT_HEADER] == "order.cancelled"


async def test_publishing_again_with_the_same_event_id_makes_no_new_job(app: errands.App) -> None:
    first = await app.publish_async("order.created", 5, event_id="evt-1")
    again = await app.publish_async("order.created", 5, event_id="evt-1")
    assert [h.id for h in again] == [h.id for h in first]
    assert all(h.duplicate for h in again)
    assert len(await jobs(app)) == 2
    assert len(await app.publish_async("order.created", 5, event_id="evt-2")) == 2


async def test_publishing_with_no_subscriber_is_allowed_and_logged(
    app: errands.App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="errands.routing")
    assert await app.publish_async("invoice.paid", 1) == []
    assert "invoice.paid: no task subscribes" in caplog.text
    assert await jobs(app) == []


async def test_a_subscriber_added_later_receives_only_later_events(
    app: errands.App, store_url: str
) -> None:
    await app.publish_async("order.shipped", 1)
    later = shop(store_url, broker=app.broker if store_url.startswith("memory") else None)
    try:

        @later.subscribe("order.shipped")
        @later.task(name="track")
        def track(order_id: int) -> None:
            """A subscriber deployed after the first event."""

        await later.exchanges.sync_async()
        handles = await app.publish_async("order.shipped", 2)
        tasks = sorted(job.task for job in await jobs(app))
        assert tasks == ["mail", "mail", "track"]
        assert len(handles) == 2
    finally:
        if not store_url.startswith("memory"):
            await later.close_async()


async def test_the_events_exchange_is_stored_with_each_subscription(app: errands.App) -> None:
    await app.exchanges.sync_async()
    topology = await app.exchanges.topology_async()
    subscriptions = {(b.destination, b.key) for b in topology.bindings if b.exchange == EVENTS}
    assert subscriptions == {("mail", "order.*"), ("stock", "order.created")}
