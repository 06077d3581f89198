"""Matching a routing key against bindings, as AMQP 0-9-1 (and RabbitMQ) does."""

from __future__ import annotations

import pytest

import errands
from errands.brokers.contract import Binding, Exchange, Topology
from errands.routing import destinations, matches, topic_matches


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("eu.*", "eu.paris", True),
        ("eu.*", "eu.paris.north", False),
        ("eu.*", "eu", False),
        ("eu.#", "eu", True),
        ("eu.#", "eu.paris.north", True),
        ("#", "", True),
        ("#", "a.b.c", True),
        ("*", "", False),
        ("*", "one", True),
        ("*.paris", "eu.paris", True),
        ("*.paris", "paris", False),
        ("#.paris", "paris", True),
        ("#.paris", "eu.fr.paris", True),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
        ("#.#", "a", True),
        ("a.*.#", "a", False),
        ("a.*.#", "a.b", True),
        ("order.created", "order.created", True),
        ("order.created", "order.createdd", False),
        ("order..x", "order..x", True),  # an empty word is a word
    ],
)
def test_topic_patterns_match_as_amqp_says(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


def test_direct_matches_equal_keys_and_fanout_every_key() -> None:
    assert matches("direct", "eu.*", "eu.*")
    assert not matches("direct", "eu.*", "eu.paris")
    assert matches("fanout", "anything", "other")


def test_a_queue_bound_twice_gets_one_destination() -> None:
    topology = Topology(
        (Exchange("orders", "topic"),),
        (
            Binding("orders", "audit", "#"),
            Binding("orders", "audit", "eu.*"),
            Binding("orders", "eu", "eu.*"),
        ),
    )
    assert destinations(topology, "orders", "eu.rome") == ["audit", "eu"]


def test_an_unknown_exchange_is_named() -> None:
    with pytest.raises(errands.ExchangeNotFound, match=r"'billing'.*declared: orders"):
        destinations(Topology((Exchange("orders"),)), "billing", "x")


def test_a_bad_exchange_declaration_names_the_bad_value() -> None:
    app = errands.App("memory://")
    with pytest.raises(ValueError, match="'weird'"):
        app.exchange("x", "weird")
    with pytest.raises(ValueError, match="'sometimes'"):
        app.exchange("x", "topic", unroutable="sometimes")
    app.close()


def test_options_refuse_an_unknown_option_and_a_key_without_exchange() -> None:
    app = errands.App("memory://")

    @app.task
    def ship(order_id: int) -> None: ...

    with pytest.raises(TypeError, match="'dealy'"):
        ship.options(dealy=1)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="routing_key goes with exchange"):
        ship.options(routing_key="eu.paris")  # type: ignore[call-overload]
    routed = ship.options(exchange="orders", routing_key="eu.paris")
    assert isinstance(routed, errands.RoutedTask)
    assert isinstance(routed.options(priority=5), errands.RoutedTask)
    app.close()
