"""Inputs: a released step gets the results it waits for placed first among its arguments."""

from __future__ import annotations

from datetime import timedelta

import pytest

import errands
from errands import codec, envelope
from errands.brokers.contract import ClaimOptions
from errands.brokers.memory import MemoryBroker
from errands.job import FailReason, JobSpec
from errands.outcome import Completed, Failed
from errands.testing import FakeClock
from errands.workflow.inputs import supplied
from errands.workflow.plan import plan

LEASE = timedelta(seconds=30)


@pytest.fixture
def add(app: errands.App) -> errands.Task[..., int]:
    @app.task(name="add")
    def add(x: int, y: int = 0) -> int:
        return x + y

    return add


async def run_first(broker: MemoryBroker, queue: str = "default") -> None:
    """Claim one job and complete it with its own arguments' sum."""
    [claimed] = await broker.claim(ClaimOptions([queue], n=1, lease=LEASE, worker_id="w"))
    args = envelope.decode(claimed.job.payload).args
    await broker.finish([Completed(claimed.lease, codec.dumps(sum(args)))])


async def test_an_ordinary_job_passes_untouched(add: errands.Task[..., int]) -> None:
    broker = MemoryBroker()
    await broker.enqueue_many([add.call(1, 2).spec()])
    [claimed] = await broker.claim(ClaimOptions(["default"], n=1, lease=LEASE, worker_id="w"))
    assert await supplied(broker, claimed) is claimed


async def test_the_results_waited_for_come_first(add: errands.Task[..., int]) -> None:
    broker = MemoryBroker()
    specs: list[JobSpec] = plan(
        errands.chain(errands.group(add.call(1, 2), add.call(3, 4)), add.call(100))
    ).specs
    await broker.enqueue_many(specs)
    await run_first(broker)
    await run_first(broker)
    [claimed] = await broker.claim(ClaimOptions(["default"], n=1, lease=LEASE, worker_id="w"))
    fed = await supplied(broker, claimed)
    assert not isinstance(fed, Failed)
    decoded = envelope.decode(fed.job.payload)
    assert (decoded.args, decoded.depends_on) == ([[3, 7], 100], None)
    assert await supplied(broker, fed) is fed  # fed once: a second look passes it by


async def test_a_result_that_is_gone_dead_letters_the_step(add: errands.Task[..., int]) -> None:
    clock = FakeClock()
    broker = MemoryBroker(clock=clock)
    first, second = plan(errands.chain(add.call(1), add.call())).specs
    await broker.enqueue_many([first, second])
    await run_first(broker)
    clock.advance(timedelta(days=30))
    assert await broker.prune(finished_before=clock.now(), limit=10) == 1
    [claimed] = await broker.claim(ClaimOptions(["default"], n=1, lease=LEASE, worker_id="w"))
    outcome = await supplied(broker, claimed)
    assert isinstance(outcome, Failed)
    assert outcome.reason is FailReason.BAD_ARGUMENTS
    assert outcome.error is not None
    assert "is no longer stored" in outcome.error.message


def test_step_failed_travels_through_the_codec() -> None:
    failure = errands.StepFailed("01a", "failed", "error", "ValueError", "boom")
    assert codec.loads(codec.dumps([failure, 1])) == [failure, 1]
