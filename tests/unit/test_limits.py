"""Limits as declared: rate strings, bursts, limit keys from a call's arguments, and the limits
each enqueued job carries (task, per-call and queue limits)."""

from __future__ import annotations

from typing import Any

import pytest

import errands
from errands.limits import Limit, Limits, parse_rate


@pytest.mark.parametrize(
    ("rate", "period_us"),
    [
        ("100/s", 10_000),
        ("1/s", 1_000_000),
        ("5/m", 12_000_000),
        ("3600/h", 1_000_000),
        ("1/100ms", 100_000),
        ("2/10s", 5_000_000),
        (" 10 / s ", 100_000),
        ("3/s", 333_334),  # rounded up: never faster than asked
        ("1000000/s", 1),
    ],
)
def test_a_rate_becomes_its_period(rate: str, period_us: int) -> None:
    assert parse_rate(rate) == period_us


@pytest.mark.parametrize("rate", ["", "100", "100/d", "s/100", "0/s", "1/0s", "-1/s", "1.5/s"])
def test_a_bad_rate_is_refused_naming_it(rate: str) -> None:
    with pytest.raises(ValueError, match="bad rate_limit") as raised:
        parse_rate(rate)
    assert repr(rate) in str(raised.value)


def test_a_rate_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(ValueError, match="bad rate_limit"):
        parse_rate(10)  # type: ignore[arg-type]


def test_declared_limits_default_to_a_burst_of_one() -> None:
    assert Limits.declare("10/s", None, None) == Limits(100_000, 1, None)
    assert Limits.declare(None, 3, None) == Limits(None, 1, 3)
    assert Limits.declare("10/s", 2, 5) == Limits(100_000, 5, 2)
    assert Limits.declare(None, None, None) is None


def test_a_rate_above_one_job_a_millisecond_gets_the_burst_a_millisecond_holds() -> None:
    # The broker's clock ticks in ms: with a burst of one it would start a job a tick.
    assert Limits.declare("100000/s", None, None) == Limits(10, 100, None)


@pytest.mark.parametrize(
    ("rate", "concurrency", "burst", "message"),
    [
        (None, 0, None, "concurrency_limit must be an int >= 1"),
        (None, True, None, "concurrency_limit must be an int >= 1"),
        (None, 2.5, None, "concurrency_limit must be an int >= 1"),
        ("1/s", None, 0, "burst must be an int >= 1"),
        (None, 2, 3, "burst= goes with rate_limit="),
        (None, None, 3, "burst= goes with rate_limit="),
    ],
)
def test_bad_limits_are_refused(
    rate: str | None, concurrency: Any, burst: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Limits.declare(rate, concurrency, burst)


def test_a_task_limit_is_keyed_by_the_task_name(app: errands.App) -> None:
    @app.task(name="mail.send", rate_limit="10/s", concurrency_limit=4)
    def send(to: str) -> None: ...

    assert send.call("a@b").spec().limits == (Limit("task:mail.send", 100_000, 1, 4),)


def test_a_limit_key_names_an_argument_given_by_position_keyword_or_default(
    app: errands.App,
) -> None:
    @app.task(name="charge", concurrency_limit=1, limit_key="customer_id")
    def charge(customer_id: int, amount: int, region: str = "eu") -> None: ...

    assert charge.call(7, 10).spec().limits[0].key == "task:charge:7"
    assert charge.call(amount=1, customer_id="c9").spec().limits[0].key == "task:charge:c9"

    @app.task(name="ship", concurrency_limit=1, limit_key="region")
    def ship(order: int, region: str = "eu") -> None: ...

    assert ship.call(1).spec().limits[0].key == "task:ship:eu"


def test_a_limit_key_callable_is_given_the_calls_arguments_by_name(app: errands.App) -> None:
    @app.task(name="sync", rate_limit="1/s", limit_key=lambda customer_id, **_: customer_id)
    def sync(customer_id: str, full: bool = False) -> None: ...

    assert sync.call("acme", full=True).spec().limits[0].key == "task:sync:acme"


def test_a_key_of_none_falls_back_to_the_task_wide_key(app: errands.App) -> None:
    @app.task(name="sync", rate_limit="1/s", limit_key=lambda tenant=None, **_: tenant)
    def sync(tenant: str | None = None) -> None: ...

    assert sync.call().spec().limits[0].key == "task:sync"


def test_a_limit_key_that_is_not_an_argument_is_refused_naming_it(app: errands.App) -> None:
    with pytest.raises(ValueError, match="limit_key 'customer' is not an argument of task t"):

        @app.task(name="t", concurrency_limit=1, limit_key="customer")
        def t(customer_id: int) -> None: ...


def test_a_limit_key_without_a_limit_is_refused(app: errands.App) -> None:
    with pytest.raises(ValueError, match="limit_key= goes with"):

        @app.task(limit_key="x")
        def t(x: int) -> None: ...


def test_a_bad_rate_on_a_task_is_refused_at_registration(app: errands.App) -> None:
    with pytest.raises(ValueError, match="bad rate_limit '10 per second'"):

        @app.task(rate_limit="10 per second")
        def t() -> None: ...


def test_options_set_limits_for_the_calls_they_make(app: errands.App) -> None:
    @app.task(name="report", rate_limit="1/s", concurrency_limit=2)
    def report(day: str) -> None: ...

    faster = report.options(rate_limit="5/s")
    assert faster.call("mon").spec().limits == (Limit("task:report", 200_000, 1, 2),)
    both = faster.options(concurrency_limit=1)
    assert both.call("mon").spec().limits == (Limit("task:report", 200_000, 1, 1),)
    assert report.call("mon").spec().limits == (Limit("task:report", 1_000_000, 1, 2),)


def test_options_can_limit_a_task_that_has_no_limit(app: errands.App) -> None:
    @app.task(name="plain")
    def plain() -> None: ...

    assert plain.call().spec().limits == ()
    assert plain.options(concurrency_limit=3).call().spec().limits == (
        Limit("task:plain", None, 1, 3),
    )


def test_a_queue_limit_joins_every_job_enqueued_to_the_queue(app: errands.App) -> None:
    app.queue_limit("emails", rate_limit="10/s", concurrency_limit=5)

    @app.task(name="welcome", queue="emails", concurrency_limit=1)
    def welcome(user: int) -> None: ...

    @app.task(name="other")
    def other() -> None: ...

    assert welcome.call(1).spec().limits == (
        Limit("task:welcome", None, 1, 1),
        Limit("queue:emails", 100_000, 1, 5),
    )
    assert other.options(queue="emails").call().spec().limits == (
        Limit("queue:emails", 100_000, 1, 5),
    )
    assert other.call().spec().limits == ()
    assert app.by_name("unknown.task").options(queue="emails").call().spec().limits[0].queue == (
        "emails"
    )
    app.queue_limit("emails")
    assert other.options(queue="emails").call().spec().limits == ()
