"""Stored routing topology: exchanges and bindings as declared, each once, seen by every
broker object on the same storage."""

from __future__ import annotations

from pathlib import Path

import pytest

from errands.brokers.contract import Binding, Broker, Exchange, Topology
from errands.testing import FakeClock

from .conftest import make_broker

ORDERS = Exchange("orders", "topic")
AUDIT = Binding("orders", "audit", "#")
PARIS = Binding("orders", "eu-orders", "eu.*")


async def test_a_new_broker_stores_no_topology(broker: Broker) -> None:
    assert await broker.topology() == Topology()


async def test_declared_exchanges_and_bindings_are_listed_sorted(broker: Broker) -> None:
    fanout = Exchange("alerts", "fanout", unroutable="drop")
    await broker.declare([ORDERS, fanout], [PARIS, AUDIT, Binding("alerts", "pager")])
    topology = await broker.topology()
    assert topology.exchanges == (fanout, ORDERS)
    assert topology.bindings == (Binding("alerts", "pager"), AUDIT, PARIS)


async def test_declaring_again_stores_each_binding_once(broker: Broker) -> None:
    await broker.declare([ORDERS], [AUDIT, PARIS])
    await broker.declare([ORDERS], [AUDIT, AUDIT, PARIS])
    assert (await broker.topology()).bindings == (AUDIT, PARIS)


async def test_an_exchange_declared_again_takes_the_new_kind_and_flag(broker: Broker) -> None:
    await broker.declare([ORDERS], [])
    changed = Exchange("orders", "direct", unroutable="drop")
    await broker.declare([changed], [])
    assert (await broker.topology()).exchanges == (changed,)


async def test_bindings_differing_only_in_key_or_destination_are_distinct(broker: Broker) -> None:
    keys = [
        Binding("orders", "q", "a.b"),
        Binding("orders", "q", "a.*"),
        Binding("orders", "r", "a.b"),
    ]
    await broker.declare([ORDERS], keys)
    assert len((await broker.topology()).bindings) == 3


async def test_unbind_deletes_only_the_named_bindings_and_counts_them(broker: Broker) -> None:
    await broker.declare([ORDERS], [AUDIT, PARIS])
    assert await broker.unbind([AUDIT, Binding("orders", "nope", "x")]) == 1
    assert (await broker.topology()).bindings == (PARIS,)
    assert await broker.unbind([AUDIT]) == 0
    assert (await broker.topology()).exchanges == (ORDERS,)  # the exchange stays


async def test_names_and_keys_round_trip_exactly(broker: Broker) -> None:
    odd = Binding("bestellungen ✓", "Warteschlange/ä", "eu.#.*.ünïcode")
    await broker.declare([Exchange("bestellungen ✓", "topic")], [odd])
    assert (await broker.topology()).bindings == (odd,)


@pytest.mark.needs("cross_process")
async def test_another_broker_on_the_same_storage_sees_the_topology(
    broker: Broker, broker_kind: str, clock: FakeClock, tmp_path: Path
) -> None:
    other = make_broker(broker_kind, clock, tmp_path)
    await other.open()
    try:
        await broker.declare([ORDERS], [AUDIT])
        assert await other.topology() == Topology((ORDERS,), (AUDIT,))
        assert await other.unbind([AUDIT]) == 1
        assert (await broker.topology()).bindings == ()
    finally:
        await other.close()
