"""Exchanges and bindings to script arguments and script replies back to a Topology: what
scripts/topology.lua, declare.lua and unbind.lua take and return, so broker.py only calls them.

An exchange is a field of the `exchanges` hash, its name -> the JSON object {"kind",
"unroutable"}. A binding is a member of the `bindings` set, the JSON array [exchange,
destination, key]: one encoding per binding (so SADD stores it once and SREM finds it) and
unambiguous whatever characters the three strings hold ("." "#" "*", separators, unicode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from errands.brokers.contract import Binding, Exchange, Topology


class _Stored(msgspec.Struct, frozen=True):
    """An exchange's value in the hash (its name is the field)."""

    kind: str
    unroutable: str


_encode = msgspec.json.Encoder().encode
_exchange = msgspec.json.Decoder(_Stored).decode
_binding = msgspec.json.Decoder(tuple[str, str, str]).decode


def member(binding: Binding) -> bytes:
    """The `bindings` set's member for `binding`."""
    return _encode((binding.exchange, binding.destination, binding.key))


def declare_args(exchanges: Sequence[Exchange], bindings: Sequence[Binding]) -> list[Any]:
    """The declare script's ARGV after `now`: the number of exchanges, name and JSON of each,
    then one member per binding."""
    args: list[Any] = [len(exchanges)]
    for exchange in exchanges:
        args += (exchange.name, _encode(_Stored(exchange.kind, exchange.unroutable)))
    args += (member(binding) for binding in bindings)
    return args


def unbind_args(bindings: Sequence[Binding]) -> list[bytes]:
    """The unbind script's ARGV after `now`: each binding's member, once."""
    return [member(binding) for binding in dict.fromkeys(bindings)]


def stored_topology(reply: Sequence[Any]) -> Topology:
    """The Topology from a topology reply, the exchanges hash flat and the bindings set, sorted
    as Broker.topology says."""
    flat, members = reply
    exchanges = []
    for i in range(0, len(flat), 2):
        stored = _exchange(flat[i + 1])
        exchanges.append(Exchange(flat[i].decode(), stored.kind, stored.unroutable))
    exchanges.sort(key=lambda exchange: exchange.name)
    bindings = [Binding(*_binding(raw)) for raw in members]
    bindings.sort(key=lambda b: (b.exchange, b.destination, b.key))
    return Topology(tuple(exchanges), tuple(bindings))
