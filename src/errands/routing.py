"""Routing: where a message sent through an exchange goes, decided once, here.

Brokers store the topology (exchanges and bindings); producers read it and expand a routed
call into one job per matching destination before the one atomic enqueue. Matching follows
AMQP 0-9-1: a direct binding matches an equal key, a fanout binding every key, a topic
binding a pattern of dot-separated words where `*` is exactly one word and `#` zero or more.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from errands.brokers.contract import Binding, Exchange, Topology
from errands.errors import ExchangeNotFound

#: The topic exchange that pub/sub subscriptions bind to; its destinations are task names.
EVENTS: Final = "errands.events"
KINDS: Final = ("direct", "topic", "fanout")
UNROUTABLE: Final = ("raise", "drop")


def check_exchange(exchange: Exchange) -> Exchange:
    """`exchange` if its fields are valid, else ValueError naming the bad value."""
    if not isinstance(exchange.name, str) or not exchange.name:
        raise ValueError(f"an exchange name must be a non-empty string, got {exchange.name!r}")
    if exchange.kind not in KINDS:
        raise ValueError(f"exchange kind must be one of {KINDS}, got {exchange.kind!r}")
    if exchange.unroutable not in UNROUTABLE:
        raise ValueError(f"unroutable must be one of {UNROUTABLE}, got {exchange.unroutable!r}")
    return exchange


def check_binding(binding: Binding) -> Binding:
    """`binding` if its fields are valid, else ValueError naming the bad value."""
    for field, value in (("exchange", binding.exchange), ("destination", binding.destination)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"a binding's {field} must be a non-empty string, got {value!r}")
    if not isinstance(binding.key, str):
        raise ValueError(f"a binding key must be a string, got {binding.key!r}")
    return binding


def destinations(topology: Topology, exchange: str, key: str) -> list[str]:
    """The destinations (queues, or tasks for EVENTS) of a message sent to `exchange` with
    routing key `key`, each once, sorted; ExchangeNotFound for an exchange not declared."""
    found = next((e for e in topology.exchanges if e.name == exchange), None)
    if found is None:
        raise ExchangeNotFound(exchange, [e.name for e in topology.exchanges])
    matched = {
        b.destination
        for b in topology.bindings
        if b.exchange == exchange and matches(found.kind, b.key, key)
    }
    return sorted(matched)


def matches(kind: str, binding_key: str, key: str) -> bool:
    """Whether a message with `key` matches a binding with `binding_key` on an exchange of
    `kind`."""
    if kind == "fanout":
        return True
    if kind == "direct":
        return binding_key == key
    return topic_matches(binding_key, key)


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: `*` one word, `#` zero or more, words split on "."."""
    return _match(tuple(pattern.split(".")), tuple(key.split(".")) if key else ())


def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        # Zero words, or one word and try again: consecutive #s collapse on the way.
        return _match(rest, words) or (bool(words) and _match(pattern, words[1:]))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])
