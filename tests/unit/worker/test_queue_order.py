"""Several queues in one worker: by job priority (one claim), strictly in the order given, or
in a weighted random order per claim (`--queues high=3,default=1`)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

import errands
from errands.worker.queue_order import QueueOrder, parse


def test_names_parse_as_a_list_and_weights_as_a_mapping() -> None:
    assert parse("high, default") == ("high", "default")
    assert parse("high=3,default=1") == {"high": 3, "default": 1}


@pytest.mark.parametrize(
    ("text", "named"),
    [("high=3,default", "every queue a weight"), ("high=0", "'high=0'"), ("a,,b", "'a,,b'")],
)
def test_a_bad_queue_list_is_refused_naming_it(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse(text)


def test_without_an_order_one_claim_covers_every_queue() -> None:
    assert QueueOrder.of(["a", "b"]).rounds() == [("a", "b")]


def test_strict_order_claims_the_queues_in_the_order_given() -> None:
    assert QueueOrder.of(["high", "low"], strict=True).rounds() == [("high",), ("low",)]


def test_weights_put_a_queue_first_in_proportion_to_its_weight() -> None:
    order = QueueOrder(("high", "default"), {"high": 3, "default": 1}, rng=random.Random(7))
    firsts = Counter(order.rounds()[0][0] for _ in range(4000))
    # P(high first) = 3 / (3 + 1) for two queues drawn by weight.
    assert 0.72 < firsts["high"] / 4000 < 0.78
    assert all(sorted(order.rounds()) == [("default",), ("high",)] for _ in range(10))


def test_a_strict_worker_runs_the_first_queue_before_the_next() -> None:
    app = errands.App("memory://")
    ran: list[str] = []

    @app.task(queue="low")
    def low(n: int) -> None:
        ran.append("low")

    @app.task(queue="high")
    def high(n: int) -> None:
        ran.append("high")

    low.enqueue_many(range(5))
    high.enqueue_many(range(5))
    app.run_until_idle(queues=["high", "low"], strict=True, concurrency=1)
    assert ran == ["high"] * 5 + ["low"] * 5
    app.close()
