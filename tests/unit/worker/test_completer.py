"""Completer: outcomes reach finish() in batches: at the size, after the window, at once when
told, in order, and none is lost when a finish fails."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from errands.lease import Lease
from errands.outcome import Completed, Outcome
from errands.worker.completer import Completer

WITHIN = 5.0  # seconds: a deadline for waits that should end in milliseconds
LONG = timedelta(hours=1)  # a window that never ends within a test


class FakeBroker:
    """Records each finish() batch; fails the first `failures` calls; signals every call."""

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[Outcome]] = []
        self.failures = failures
        self.calls = 0
        self.called = asyncio.Event()

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        self.calls += 1
        self.called.set()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker went away")
        self.batches.append(list(outcomes))
        return [True] * len(outcomes)

    async def next_call(self, within: float = WITHIN) -> None:
        await asyncio.wait_for(self.called.wait(), within)
        self.called.clear()

    @property
    def sent(self) -> list[Outcome]:
        return [outcome for batch in self.batches for outcome in batch]


def outcome(n: int) -> Completed:
    return Completed(Lease(f"job-{n}", 1, "token", datetime(2030, 1, 1, tzinfo=UTC)), b"null")


def completer_for(
    broker: FakeBroker, *, window: timedelta = LONG, size: int = 100
) -> tuple[Completer, list[tuple[list[Outcome], list[bool]]]]:
    flushed: list[tuple[list[Outcome], list[bool]]] = []
    completer = Completer(
        broker,  # type: ignore[arg-type]
        window=window,
        size=size,
        on_flushed=lambda batch, applied: flushed.append((list(batch), list(applied))),
    )
    return completer, flushed


async def settle() -> None:
    """Let every ready callback and task run (no time passes on any timer that matters)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_outcomes_wait_until_the_batch_is_full_then_go_in_one_finish() -> None:
    broker = FakeBroker()
    completer, _ = completer_for(broker, size=3)

    completer.add(outcome(1))
    completer.add(outcome(2))
    await settle()
    assert broker.calls == 0
    assert len(completer) == 2

    completer.add(outcome(3))
    await broker.next_call()
    await settle()

    assert broker.batches == [[outcome(1), outcome(2), outcome(3)]]
    assert len(completer) == 0


async def test_a_lone_outcome_is_sent_when_the_window_ends() -> None:
    broker = FakeBroker()
    completer, flushed = completer_for(broker, window=timedelta(milliseconds=20))

    completer.add(outcome(1))
    assert broker.calls == 0

    await broker.next_call()
    await settle()

    assert broker.batches == [[outcome(1)]]
    assert flushed == [([outcome(1)], [True])]


async def test_outcomes_within_one_window_share_one_finish() -> None:
    broker = FakeBroker()
    completer, _ = completer_for(broker, window=timedelta(milliseconds=50))

    for n in range(5):
        completer.add(outcome(n))
    await broker.next_call()
    await settle()

    assert broker.batches == [[outcome(n) for n in range(5)]]


async def test_now_flushes_at_once_without_waiting_for_the_window() -> None:
    broker = FakeBroker()
    completer, _ = completer_for(broker)

    completer.add(outcome(1))
    completer.add(outcome(2), now=True)
    await broker.next_call()
    await settle()

    assert broker.batches == [[outcome(1), outcome(2)]]


async def test_a_flush_cancels_the_pending_window_timer() -> None:
    broker = FakeBroker()
    completer, _ = completer_for(broker, window=timedelta(milliseconds=30))

    completer.add(outcome(1))
    completer.add(outcome(2), now=True)
    await broker.next_call()
    completer.add(outcome(3))  # starts a fresh window
    await broker.next_call()
    await settle()

    assert broker.batches == [[outcome(1), outcome(2)], [outcome(3)]]


async def test_outcomes_reach_the_broker_in_the_order_they_were_added() -> None:
    broker = FakeBroker()
    completer, _ = completer_for(broker, size=7)

    for n in range(50):
        completer.add(outcome(n))
        if n % 10 == 9:
            await settle()  # let some flushes happen between adds
    await completer.drain()

    assert broker.sent == [outcome(n) for n in range(50)]
    assert len(broker.batches) > 1


async def test_on_flushed_gets_each_batch_with_what_the_broker_applied() -> None:
    broker = FakeBroker()
    completer, flushed = completer_for(broker, size=2)

    completer.add(outcome(0))
    completer.add(outcome(1))
    await broker.next_call()
    completer.add(outcome(2))
    completer.add(outcome(3))
    await broker.next_call()
    await settle()

    assert flushed == [
        ([outcome(0), outcome(1)], [True, True]),
        ([outcome(2), outcome(3)], [True, True]),
    ]
    assert completer.flushes == 2


async def test_a_failing_finish_loses_nothing_and_the_next_flush_sends_it_in_order() -> None:
    broker = FakeBroker(failures=1)
    completer, flushed = completer_for(broker)

    completer.add(outcome(1))
    completer.add(outcome(2), now=True)
    await broker.next_call()  # the failing one
    completer.add(outcome(3))
    await completer.drain()

    assert broker.calls == 2
    assert broker.sent == [outcome(1), outcome(2), outcome(3)]
    assert [batch for batch, _ in flushed] == [[outcome(1), outcome(2), outcome(3)]]


async def test_drain_retries_until_a_failing_broker_takes_the_outcomes() -> None:
    broker = FakeBroker(failures=2)
    completer, _ = completer_for(broker)

    completer.add(outcome(1))
    completer.add(outcome(2))
    await asyncio.wait_for(completer.drain(), WITHIN)

    assert broker.calls == 3
    assert broker.sent == [outcome(1), outcome(2)]
    assert len(completer) == 0


async def test_a_failed_finish_is_retried_without_another_outcome_arriving() -> None:
    broker = FakeBroker(failures=1)
    completer, _ = completer_for(broker, window=timedelta(milliseconds=10))

    completer.add(outcome(1), now=True)
    await broker.next_call()  # the failing one

    await broker.next_call(within=2.0)  # a retry must come on its own
    await settle()
    assert broker.sent == [outcome(1)]


async def test_drain_with_nothing_pending_calls_no_finish() -> None:
    broker = FakeBroker()
    completer, _ = completer_for(broker)

    await completer.drain()

    assert broker.calls == 0
