"""Exchanges and bindings to the routing scripts' arguments and topology replies back."""

from __future__ import annotations

import pytest

from errands.brokers.contract import Binding, Exchange, Topology
from errands.brokers.redis.topology import (
    declare_args,
    member,
    stored_topology,
    unbind_args,
)

ODD = ["", ".", "#", "*", "a.b", '"', "\\", "\x00", ",", "[", "ü ✓", 'a","b']


def test_every_binding_has_its_own_member() -> None:
    bindings = {Binding(e, d, k) for e in ODD for d in ODD for k in ODD}

    assert len({member(b) for b in bindings}) == len(bindings)


@pytest.mark.parametrize("text", ODD)
def test_members_and_exchanges_read_back_exactly(text: str) -> None:
    binding = Binding(text, text + "/q", "eu.#." + text)
    exchange = Exchange(text, "topic", "drop")
    args = declare_args([exchange], [binding])

    reply = [[args[1].encode(), args[2]], [args[3]]]
    assert stored_topology(reply) == Topology((exchange,), (binding,))


def test_declare_args_count_the_exchanges_before_the_bindings() -> None:
    args = declare_args([Exchange("a"), Exchange("b", "fanout")], [Binding("a", "q")])

    assert args[0] == 2
    assert args[1::2][:2] == ["a", "b"]
    assert args[-1] == member(Binding("a", "q"))


def test_unbind_sends_each_binding_once() -> None:
    twice = Binding("a", "q", "k")

    assert unbind_args([twice, twice]) == [member(twice)]


def test_a_reply_is_sorted_by_name_and_by_exchange_destination_key() -> None:
    b1, b2, b3 = Binding("a", "q", "z"), Binding("a", "r", "a"), Binding("b", "a", "a")
    flat = [b"z", b'{"kind":"direct","unroutable":"raise"}']
    flat += [b"a", b'{"kind":"topic","unroutable":"drop"}']

    topology = stored_topology([flat, [member(b) for b in (b3, b2, b1)]])

    assert topology.exchanges == (Exchange("a", "topic", "drop"), Exchange("z"))
    assert topology.bindings == (b1, b2, b3)
