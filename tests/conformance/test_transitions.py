"""Every state change a broker makes is one TRANSITIONS allows.

One scenario drives jobs through every verb; after each call an Observer reads every stored job
and records each change of state it sees, with the verb that made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from errands.brokers.contract import Broker, Claimed, ClaimOptions, JobQuery
from errands.job import TRANSITIONS, FailReason, JobId, JobState
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

from .conftest import LEASE, claim_one, enqueue, error, heartbeat, rescue, spec
from .kit import lacks

Edge = tuple[JobState, JobState]
ALLOWED: frozenset[Edge] = frozenset(
    (old, new) for old, news in TRANSITIONS.items() for new in news
)
#: claim promotes due jobs first, so one claim may show two allowed steps as one change.
PROMOTED_BY_CLAIM = frozenset({JobState.SCHEDULED, JobState.RETRYABLE})


@dataclass
class Observer:
    """Reads every job after each verb and keeps the state changes it saw."""

    broker: Broker
    last: dict[JobId, JobState] = field(default_factory=dict)
    seen: set[Edge] = field(default_factory=set)
    illegal: list[str] = field(default_factory=list)

    async def after(self, verb: str) -> None:
        page = await self.broker.list_jobs(JobQuery(limit=10_000))
        assert page.next_cursor is None
        now = {job.id: job.state for job in page.jobs}
        for job_id, new in now.items():
            old = self.last.get(job_id)
            if old is None:
                if new not in (JobState.PENDING, JobState.SCHEDULED, JobState.AVAILABLE):
                    self.illegal.append(f"{verb}: {job_id} appeared as {new}")
            elif old != new:
                self._record(verb, job_id, old, new)
        self.last = now

    def _record(self, verb: str, job_id: JobId, old: JobState, new: JobState) -> None:
        if (old, new) in ALLOWED:
            self.seen.add((old, new))
        elif verb == "claim" and old in PROMOTED_BY_CLAIM and new is JobState.RUNNING:
            self.seen.update({(old, JobState.AVAILABLE), (JobState.AVAILABLE, new)})
        else:
            self.illegal.append(f"{verb}: {job_id} moved {old} -> {new}")


#: max_crashes of each job: "crash" dies at its first crash, "crash2" at its second.
MAX_CRASHES = {"crash": 1, "crash2": 2}
NAMES = ("done", "retry", "crash", "crash2", "lapse", "stop", "abandon", "release", "snooze")


async def test_every_verb_moves_jobs_only_along_allowed_transitions(
    broker: Broker, clock: FakeClock
) -> None:
    seen = Observer(broker)
    ids = await enqueue(
        broker,
        *[spec(queue=name, max_crashes=MAX_CRASHES.get(name, 3)) for name in NAMES],
        spec(queue="later", scheduled_at=clock.now() + timedelta(minutes=1)),
    )
    job = dict(zip((*NAMES, "later"), ids, strict=True))
    await seen.after("enqueue_many")

    async def claim(name: str) -> Claimed:
        claimed = await claim_one(broker, queue=name)
        await seen.after("claim")
        return claimed

    async def finish(outcome: Outcome, applied: bool = True) -> None:
        assert await broker.finish([outcome]) == [applied]
        await seen.after("finish")

    async def cancel(name: str) -> None:
        await broker.cancel([job[name]], reason="requested")
        await seen.after("cancel")

    # First round: each outcome once.
    await finish(Completed((await claim("done")).lease, result=b"r"))
    await finish(Retrying((await claim("retry")).lease, error(), delay=timedelta(seconds=10)))
    await finish(Crashed((await claim("crash")).lease, error()))  # max_crashes 1: failed
    await finish(Crashed((await claim("crash2")).lease, error()))  # retryable, due now
    await finish(Released((await claim("release")).lease))
    await finish(Snoozed((await claim("snooze")).lease, delay=timedelta(hours=1)))
    stop = await claim("stop")
    await cancel("stop")  # a request only: still running
    extended = await broker.extend([stop.lease], LEASE, heartbeat=heartbeat(clock), progress={})
    assert extended.cancel_requested == [job["stop"]]
    await seen.after("extend")
    await finish(Cancelled(stop.lease))
    await cancel("release")  # available -> cancelled
    await cancel("snooze")  # scheduled -> cancelled
    await cancel("done")  # terminal: unchanged
    workflows = lacks(broker.capabilities, "workflows") is None
    if workflows:  # pending -> cancelled by a cancel, -> available and -> scheduled on release
        parent = spec(queue="wf")
        children = [
            spec(queue="wf-next", depends_on=(parent.id,)),
            spec(queue="wf-next", depends_on=(parent.id,), scheduled_at=clock.now() + LEASE * 9),
            spec(queue="wf-next", depends_on=(parent.id,)),
        ]
        await enqueue(broker, parent, *children)
        await seen.after("enqueue_many")
        await broker.cancel([children[2].id], reason="requested")
        await seen.after("cancel")
        await finish(Completed((await claim("wf")).lease, result=b"r"))
    await broker.requeue([job["done"]])  # completed: unchanged
    await seen.after("requeue")

    # Second round: leases lapse and rescue deals with them.
    lapsed = await claim("lapse")
    await claim("abandon")
    await claim("crash2")  # retryable and due: claim promotes it first
    await cancel("abandon")
    clock.advance(LEASE + timedelta(minutes=1))
    report = await rescue(broker, clock, limit=100)
    await seen.after("rescue")
    assert sorted(report.retried) == [job["lapse"]]
    assert sorted(report.failed) == [job["crash2"]]
    assert sorted(report.cancelled) == [job["abandon"]]
    await finish(Completed(lapsed.lease, result=b"late"), applied=False)
    await cancel("lapse")  # retryable -> cancelled
    assert await broker.promote(limit=100) == 2  # "retry" and "later"
    await seen.after("promote")
    await finish(Failed((await claim("retry")).lease, FailReason.ERROR, error()))
    await broker.requeue([job["retry"], job["lapse"], job["crash"]])
    await seen.after("requeue")

    # Last round: the verbs that move nothing or delete.
    await broker.pause(["later"])
    await seen.after("pause")
    assert await broker.claim(ClaimOptions(["later"], n=1, lease=LEASE, worker_id="w1")) == []
    await seen.after("claim")
    await broker.resume(["later"])
    await seen.after("resume")
    await broker.counts()
    await broker.workers()
    await seen.after("counts")
    assert await broker.purge("release", [JobState.CANCELLED]) == 1
    await seen.after("purge")
    clock.advance(timedelta(days=3))
    assert await broker.prune(finished_before=clock.now(), limit=100) >= 1
    await seen.after("prune")

    assert seen.illegal == []
    required = ALLOWED if workflows else {e for e in ALLOWED if JobState.PENDING not in e}
    missing = sorted(f"{old} -> {new}" for old, new in required - seen.seen)
    assert missing == [], "the scenario no longer exercises every allowed transition"
