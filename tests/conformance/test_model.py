"""A broker against the memory broker (the model): random runs of verbs on one FakeClock must
give the same answers and leave every job the same, step after step.

Runs for every broker but memory itself. Job ids are made here, so both brokers store the same
ids; lease tokens differ, so each broker keeps its own leases.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from errands import policy
from errands.brokers.contract import Broker, ClaimOptions
from errands.brokers.memory import MemoryBroker
from errands.job import (
    TERMINAL_STATES,
    WAITING_STATES,
    FailReason,
    Job,
    JobId,
    JobSpec,
    JobState,
)
from errands.lease import Lease
from errands.outcome import (
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Outcome,
    Released,
    Retrying,
    Snoozed,
)
from errands.testing import FakeClock

from .conftest import LEASE, error, heartbeat, make_broker, spec
from .kit import KIT

T = TypeVar("T")
QUEUES = [("a",), ("b",), ("a", "b")]
DELAYS = [None, None, None, timedelta(0), timedelta(seconds=30), timedelta(minutes=5)]
STEPS = [timedelta(seconds=s) for s in (1, 10, 31, 61, 600)]
OUTCOMES = ["completed", "retrying", "failed", "crashed", "cancelled", "released", "snoozed"]
#: A limit no run reaches, so no broker has to choose which jobs a pass leaves for the next.
NO_LIMIT = 10_000

job_options = st.fixed_dictionaries(
    {
        "queue": st.sampled_from(["a", "b"]),
        "priority": st.sampled_from([0, 1, 5]),
        "delay": st.sampled_from(DELAYS),
        "idempotency_key": st.sampled_from([None, "k1", "k2"]),
        "max_crashes": st.sampled_from([1, 1, 2]),
    }
)


def outcome_for(kind: str, lease: Lease) -> Outcome:
    """The outcome `kind` for `lease`, with fixed delays so both brokers get the same one."""
    failure = error(lease.attempt)
    match kind:
        case "completed":
            return Completed(lease, result=f"r{lease.attempt}".encode())
        case "retrying":
            return Retrying(lease, failure, delay=timedelta(seconds=10))
        case "failed":
            return Failed(lease, FailReason.ERROR, failure)
        case "crashed":
            return Crashed(lease, failure, delay=timedelta(seconds=10))
        case "cancelled":
            return Cancelled(lease)
        case "released":
            return Released(lease)
        case _:
            return Snoozed(lease, delay=timedelta(seconds=30))


def view(job: Job) -> tuple[object, ...]:
    """What must agree between brokers: the fields the contract defines in the job's state."""
    running = job.state is JobState.RUNNING
    return (
        job.id,
        job.state,
        (job.attempt, job.failures, job.crashes),
        job.scheduled_at if job.state in WAITING_STATES else None,
        job.lease_expires_at if running else None,
        job.cancel_requested if running else None,
        (job.finished_at, job.result_expires_at) if job.state in TERMINAL_STATES else None,
        job.result if job.state is JobState.COMPLETED else None,
        job.fail_reason if job.state is JobState.FAILED else None,
        job.cancel_reason if job.state is JobState.CANCELLED else None,
        [(e.attempt, e.kind) for e in job.errors],
    )


class BrokerAgainstModel(RuleBasedStateMachine):
    """Each rule runs one verb on both brokers and compares their replies."""

    def __init__(self, kind: str, root: Path) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.clock = FakeClock()
        directory = Path(tempfile.mkdtemp(dir=root))
        # Each example gets storage of its own; a server's is dropped again in teardown.
        self.url, self.cleanup = KIT[kind].url(directory), KIT[kind].cleanup
        self.sut = make_broker(kind, self.clock, directory)
        self.model: Broker = MemoryBroker(clock=self.clock)
        self.run(self.sut.open())
        self.ids: list[JobId] = []
        self.held: dict[JobId, tuple[Lease, Lease]] = {}  # (sut's lease, model's lease)
        self.lost: list[tuple[Lease, Lease]] = []
        self.sent: list[JobSpec] = []

    def run(self, step: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(step)

    def both(self, verb: str, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """Call `verb` on the broker under test, then on the model."""
        sut = self.run(getattr(self.sut, verb)(*args, **kwargs))
        model = self.run(getattr(self.model, verb)(*args, **kwargs))
        return sut, model

    def teardown(self) -> None:
        self.run(self.sut.close())
        self.runner.close()
        self.cleanup(self.url)

    @rule(batch=st.lists(job_options, min_size=1, max_size=4))
    def enqueue(self, batch: list[dict[str, Any]]) -> None:
        specs = []
        for chosen in batch:
            options = dict(chosen)
            delay = options.pop("delay")
            due = None if delay is None else self.clock.now() + delay
            specs.append(spec(scheduled_at=due, **options))
        sut, model = self.both("enqueue_many", specs)
        assert sut == model
        stored = {item.job_id for item in model if not item.duplicate}
        self.ids.extend(item.job_id for item in model if not item.duplicate)
        self.sent.extend(one for one in specs if one.id in stored)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def resend(self, data: st.DataObject) -> None:
        """A producer resends a batch whose reply it lost: nothing stored may change."""
        again = data.draw(st.lists(st.sampled_from(self.sent), min_size=1, max_size=3))
        sut, model = self.both("enqueue_many", again)
        assert sut == model
        assert all(item.duplicate for item in model)

    def claim_on_both(self, queues: tuple[str, ...], n: int) -> list[tuple[Lease, Lease]]:
        sut, model = self.both("claim", ClaimOptions(queues, n, LEASE, worker_id="w1"))
        assert [c.job.id for c in sut] == [c.job.id for c in model]
        return [(mine.lease, theirs.lease) for mine, theirs in zip(sut, model, strict=True)]

    def finish_on_both(self, outcomes: list[tuple[str, tuple[Lease, Lease]]]) -> list[bool]:
        sut = self.run(self.sut.finish([outcome_for(kind, pair[0]) for kind, pair in outcomes]))
        model = self.run(self.model.finish([outcome_for(k, pair[1]) for k, pair in outcomes]))
        assert sut == model
        return model

    @rule(
        queues=st.sampled_from(QUEUES),
        kinds=st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=3),
    )
    def claim_and_finish(self, queues: tuple[str, ...], kinds: list[str]) -> None:
        """The common path: claim up to len(kinds) jobs and finish each with its outcome."""
        claimed = self.claim_on_both(queues, len(kinds))
        applied = self.finish_on_both(list(zip(kinds, claimed, strict=False)))
        assert applied == [True] * len(claimed)
        self.lost.extend(claimed)

    @rule(queues=st.sampled_from(QUEUES), n=st.integers(1, 3))
    def claim_and_hold(self, queues: tuple[str, ...], n: int) -> None:
        """Claims kept running, for extend, cancel requests, lapses and late finishes."""
        for pair in self.claim_on_both(queues, n):
            self.held[pair[0].job_id] = pair

    @precondition(lambda self: self.held)
    @rule(kind=st.sampled_from(OUTCOMES))
    def finish_every_held_lease(self, kind: str) -> None:
        pairs = [self.held.pop(job_id) for job_id in sorted(self.held)]
        assert self.finish_on_both([(kind, pair) for pair in pairs]) == [True] * len(pairs)
        self.lost.extend(pairs)

    @precondition(lambda self: self.lost)
    @rule(data=st.data(), kind=st.sampled_from(OUTCOMES))
    def finish_with_a_lost_lease(self, data: st.DataObject, kind: str) -> None:
        pair = data.draw(st.sampled_from(self.lost))
        assert self.finish_on_both([(kind, pair)]) == [False]

    @precondition(lambda self: self.held)
    @rule()
    def extend(self) -> None:
        ids = sorted(self.held)
        sut = self.run(self.sut.extend([self.held[i][0] for i in ids], LEASE, **self.beat()))
        model = self.run(self.model.extend([self.held[i][1] for i in ids], LEASE, **self.beat()))
        assert sorted(lease.job_id for lease in sut.leases) == sorted(
            lease.job_id for lease in model.leases
        )
        assert sorted(sut.cancel_requested) == sorted(model.cancel_requested)

    def beat(self) -> dict[str, Any]:
        return {"heartbeat": heartbeat(self.clock), "progress": {}}

    @rule(step=st.sampled_from(STEPS))
    def advance_clock(self, step: timedelta) -> None:
        self.clock.advance(step)

    @rule()
    def rescue(self) -> None:
        now = self.clock.now()
        sut = self.run(policy.rescue(self.sut, limit=NO_LIMIT, lease=LEASE, now=now))
        model = self.run(policy.rescue(self.model, limit=NO_LIMIT, lease=LEASE, now=now))
        for mine, theirs in [
            (sut.retried, model.retried),
            (sut.failed, model.failed),
            (sut.cancelled, model.cancelled),
        ]:
            assert sorted(mine) == sorted(theirs)
        for job_id in (*model.retried, *model.failed, *model.cancelled):
            self.lost.append(self.held.pop(job_id))

    @rule()
    def promote(self) -> None:
        sut, model = self.both("promote", limit=NO_LIMIT)
        assert sut == model

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.ids))
        sut, model = self.both("cancel", [job_id], reason="requested")
        assert [view(job) for job in sut] == [view(job) for job in model]

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def requeue(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.ids))
        sut, model = self.both("requeue", [job_id])
        assert [view(job) for job in sut] == [view(job) for job in model]

    @invariant()
    def every_job_agrees(self) -> None:
        sut, model = self.both("get", self.ids)
        assert [view(job) for job in sut] == [view(job) for job in model]


def test_broker_agrees_with_the_memory_broker_on_random_runs(
    broker_kind: str, tmp_path: Path
) -> None:
    if broker_kind == "memory":
        pytest.skip("memory is the model")
    make_broker(broker_kind, FakeClock(), tmp_path)  # skips if the broker is not importable

    class OnThisBroker(BrokerAgainstModel):
        def __init__(self) -> None:
            super().__init__(broker_kind, tmp_path)

    run_state_machine_as_test(
        OnThisBroker,
        settings=settings(
            max_examples=30,
            stateful_step_count=40,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
