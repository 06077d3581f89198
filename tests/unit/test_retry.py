"""RetryPolicy: exponential backoff with full jitter, a cap, and errors that never retry."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from errands.retry import RetryPolicy


def test_without_jitter_the_delay_doubles_from_base() -> None:
    policy = RetryPolicy(base=timedelta(seconds=2), cap=timedelta(hours=1), jitter=False)

    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [
        timedelta(seconds=2),
        timedelta(seconds=4),
        timedelta(seconds=8),
        timedelta(seconds=16),
    ]


def test_the_delay_never_passes_the_cap() -> None:
    policy = RetryPolicy(base=timedelta(seconds=1), cap=timedelta(seconds=30), jitter=False)

    assert policy.delay(5) == timedelta(seconds=16)
    assert policy.delay(6) == timedelta(seconds=30)
    assert policy.delay(60) == timedelta(seconds=30)


@pytest.mark.parametrize("failures", [1, 2, 3, 8, 20])
def test_full_jitter_stays_between_zero_and_the_exponential_ceiling(failures: int) -> None:
    rng = random.Random(failures)
    policy = RetryPolicy(base=timedelta(seconds=1), cap=timedelta(seconds=60), rng=rng.random)
    ceiling = min(60.0, 2.0 ** (failures - 1))

    delays = [policy.delay(failures).total_seconds() for _ in range(2000)]

    assert all(0.0 <= d <= ceiling for d in delays)
    # Full jitter spreads over the whole range, not just near the ceiling.
    assert min(delays) < ceiling * 0.05
    assert max(delays) > ceiling * 0.95


def test_jitter_scales_the_ceiling_by_the_random_draw() -> None:
    policy = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(minutes=10), rng=lambda: 0.25)

    assert policy.delay(3) == timedelta(seconds=10)  # 0.25 * 40 s


def test_the_extremes_of_the_draw_give_zero_and_the_ceiling() -> None:
    low = RetryPolicy(base=timedelta(seconds=4), rng=lambda: 0.0)
    high = RetryPolicy(base=timedelta(seconds=4), rng=lambda: 1.0)

    assert low.delay(2) == timedelta(0)
    assert high.delay(2) == timedelta(seconds=8)


def test_a_zero_base_retries_at_once() -> None:
    assert RetryPolicy(base=timedelta(0)).delay(7) == timedelta(0)


def test_defaults_are_one_second_base_and_ten_minute_cap() -> None:
    policy = RetryPolicy(jitter=False)

    assert policy.delay(1) == timedelta(seconds=1)
    assert policy.delay(30) == timedelta(minutes=10)


class Unrecoverable(Exception):
    pass


class WorseStill(Unrecoverable):
    pass


def test_dont_retry_refuses_the_named_types_and_their_subclasses() -> None:
    policy = RetryPolicy(dont_retry=(Unrecoverable, KeyError))

    assert not policy.retries(Unrecoverable())
    assert not policy.retries(WorseStill())
    assert not policy.retries(KeyError("k"))
    assert policy.retries(ValueError())


def test_every_error_retries_by_default() -> None:
    assert RetryPolicy().retries(Unrecoverable())
