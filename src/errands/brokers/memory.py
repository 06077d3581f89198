"""MemoryBroker: the reference implementation of the Broker contract in plain Python.

One process and one event loop; dicts hold the jobs and TRANSITIONS is followed literally. Where
a conformance test is unclear, this broker's behaviour is the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from errands.brokers.contract import (
    Binding,
    Capabilities,
    Claimed,
    ClaimOptions,
    Counts,
    Enqueued,
    Exchange,
    Extended,
    Firing,
    JobQuery,
    Page,
    ScheduleEntry,
    ScheduleRecord,
    Topology,
    WorkerInfo,
)
from errands.brokers.dependencies import Dependencies
from errands.brokers.memory_limits import LimitTable
from errands.brokers.memory_schedules import ScheduleTable
from errands.brokers.memory_table import JobTable, matches, new_job
from errands.brokers.memory_topology import TopologyTable
from errands.clock import Clock, SystemClock
from errands.job import (
    TERMINAL_STATES,
    TRANSITIONS,
    WAITING_STATES,
    CancelReason,
    FailReason,
    Job,
    JobId,
    JobSpec,
    JobState,
    Progress,
)
from errands.lease import Lease, new_token
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

WORKER_TTL = timedelta(seconds=60)


class MemoryBroker:
    """Jobs in dicts; wake-ups by asyncio.Condition. Not shared between processes."""

    capabilities = Capabilities(name="memory", cross_process=False)

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._table = JobTable()
        self._jobs = self._table.jobs
        self._tokens: dict[JobId, str] = {}
        self._keys: dict[tuple[str, str], JobId] = {}  # (task, idempotency key) -> owner
        self._paused: set[str] = set()
        self._queues: set[str] = set()
        self._workers: dict[str, WorkerInfo] = {}
        self._schedules = ScheduleTable()
        self._topology = TopologyTable()
        self._dependencies = Dependencies()
        self._limits = LimitTable()
        self._changed: asyncio.Condition | None = None
        self.calls = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to disconnect; the jobs stay for a later open(), perhaps on another loop
        (the wake-up condition belongs to this one)."""
        self._changed = None

    async def migrate(self) -> None:
        """No schema."""

    # -- internals -----------------------------------------------------------------------------

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _notify(self) -> None:
        condition = self._condition()
        async with condition:
            condition.notify_all()

    def _move(self, job: Job, state: JobState, *, settle: bool = True, **changes: object) -> Job:
        if state not in TRANSITIONS[job.state]:
            raise AssertionError(f"illegal transition {job.state} -> {state} for {job.id}")
        if job.state is JobState.RUNNING:
            self._tokens.pop(job.id, None)
            changes.setdefault("lease_expires_at", None)
        if job.state is JobState.PENDING:
            self._dependencies.drop(job.id)
        if state in TERMINAL_STATES:
            now = self._clock.now()
            changes.setdefault("finished_at", now)
            changes.setdefault("result_expires_at", now + job.result_ttl)
        moved = job.evolve(state=state, **changes)
        self._table.store(moved)
        if settle and state in TERMINAL_STATES:
            self._settle(job.id, completed=state is JobState.COMPLETED)
        return moved

    def _settle(self, job_id: JobId, *, completed: bool) -> None:
        """Apply the ending of `job_id` to its pending dependents (brokers/dependencies.py),
        in the same step that ended it."""
        for child, verdict in self._dependencies.ended(job_id, completed=completed):
            job = self._jobs.get(child)
            if job is None or job.state is not JobState.PENDING:
                continue
            if verdict == "cancel":
                self._move(job, JobState.CANCELLED, cancel_reason=CancelReason.PARENT_FAILED)
            else:
                assert job.scheduled_at is not None
                later = job.scheduled_at > self._clock.now()
                self._move(job, JobState.SCHEDULED if later else JobState.AVAILABLE)

    def _key_owner(self, key: tuple[str, str], now: datetime) -> JobId | None:
        owner = self._keys.get(key)
        if owner is None or owner not in self._jobs:
            return None
        job = self._jobs[owner]
        expired = job.state in TERMINAL_STATES and (
            job.result_expires_at is not None and job.result_expires_at <= now
        )
        return None if expired else owner

    # -- producing -----------------------------------------------------------------------------

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Store every spec at once; see Broker.enqueue_many."""
        self.calls += 1
        out = self._insert(specs, self._clock.now())
        await self._notify()
        return out

    def _insert(self, specs: Sequence[JobSpec], now: datetime) -> list[Enqueued]:
        out: list[Enqueued] = []
        for spec in specs:
            if spec.id in self._jobs:  # a resend: never reset the stored job
                out.append(Enqueued(spec.id, duplicate=True))
                continue
            key = (spec.task, spec.idempotency_key) if spec.idempotency_key else None
            owner = self._key_owner(key, now) if key else None
            if owner is not None:
                out.append(Enqueued(owner, duplicate=True))
                continue
            self._table.store(new_job(spec, now))
            if spec.depends_on:
                self._dependencies.add(spec.id, spec.depends_on, spec.on_failure)
            if spec.limits:
                self._limits.of[spec.id] = spec.limits
            self._queues.add(spec.queue)
            if key:
                self._take_key(key, spec.id)
            out.append(Enqueued(spec.id))
        return out

    def _take_key(self, key: tuple[str, str], job_id: JobId) -> None:
        # The job that gave the key up (its result expired) no longer holds it, as in the SQL
        # brokers, so a search by key finds only the holder.
        previous = self._jobs.get(self._keys.get(key, ""))
        if previous is not None:
            self._jobs[previous.id] = previous.evolve(idempotency_key=None)
        self._keys[key] = job_id

    # -- working -------------------------------------------------------------------------------

    def _promote_due(self, limit: int) -> int:
        now = self._clock.now()
        moved = 0
        while moved < limit and (head := self._table.due_head()) is not None and head[0] <= now:
            self._table.pop_due()
            self._move(self._jobs[head[1]], JobState.AVAILABLE)
            moved += 1
        return moved

    async def claim(self, options: ClaimOptions) -> list[Claimed]:
        """Lease up to `options.n` jobs; see Broker.claim."""
        self.calls += 1
        if options.n <= 0:
            return []
        self._promote_due(limit=1 << 30)
        wanted = sorted(set(options.queues) - self._paused)
        now = self._clock.now()
        lease, worker_id = options.lease, options.worker_id
        claimed: list[Claimed] = []
        # Jobs their limits hold back stay available, and back in line once the claim is done.
        gate = self._limits.gate(self._jobs, self._tokens, now) if self._limits.of else None
        held: list[Job] = []
        while len(claimed) < options.n:
            heads = [(h, q) for q in wanted if (h := self._table.ready_head(q)) is not None]
            if not heads:
                break
            entry, queue = min(heads)
            self._table.pop_ready(queue)
            job = self._jobs[entry[2]]
            if gate is not None and not gate.admit(self._limits.of.get(job.id, ())):
                held.append(job)
                continue
            token = new_token()
            running = self._move(
                job,
                JobState.RUNNING,
                attempt=job.attempt + 1,
                started_at=now,
                lease_expires_at=now + lease,
                worker_id=worker_id,
                cancel_requested=False,
            )
            self._tokens[job.id] = token
            claimed.append(Claimed(running, Lease(job.id, running.attempt, token, now + lease)))
        for job in held:
            self._table.store(job)
        if gate is not None:
            self._limits.keep(gate)
        return claimed

    def _holds(self, lease: Lease) -> Job | None:
        job = self._jobs.get(lease.job_id)
        if job is None or job.state is not JobState.RUNNING:
            return None
        return job if self._tokens.get(lease.job_id) == lease.token else None

    async def extend(
        self,
        leases: Sequence[Lease],
        lease: timedelta,
        *,
        heartbeat: WorkerInfo,
        progress: Mapping[JobId, Progress],
    ) -> Extended:
        """Push back every held lease; see Broker.extend."""
        self.calls += 1
        now = self._clock.now()
        kept: list[Lease] = []
        cancels: list[JobId] = []
        for held in leases:
            job = self._holds(held)
            if job is None:
                continue
            changes: dict[str, object] = {"lease_expires_at": now + lease}
            if held.job_id in progress:
                changes["progress"] = progress[held.job_id]
            self._jobs[job.id] = job.evolve(**changes)
            kept.append(held.extended_to(now + lease))
            if job.cancel_requested:
                cancels.append(job.id)
        self._workers[heartbeat.id] = replace(heartbeat, seen_at=now)
        return Extended(kept, cancels)

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply outcomes whose lease holds; see Broker.finish."""
        self.calls += 1
        applied = []
        for outcome in outcomes:
            job = self._holds(outcome.lease)
            if job is not None:
                self._apply(job, outcome)
            applied.append(job is not None)
        await self._notify()
        return applied

    def _apply(self, job: Job, outcome: Outcome) -> None:
        now = self._clock.now()
        match outcome:
            case Completed(result=result):
                self._move(job, JobState.COMPLETED, result=result)
            case Retrying(error=error, delay=delay):
                self._move(
                    job,
                    JobState.RETRYABLE,
                    failures=job.failures + 1,
                    errors=(*job.errors, error),
                    scheduled_at=now + delay,
                )
            case Failed(reason=reason, error=error):
                counter = "crashes" if reason is FailReason.CRASHED else "failures"
                extra = (
                    {}
                    if error is None
                    else {counter: getattr(job, counter) + 1, "errors": (*job.errors, error)}
                )
                self._move(job, JobState.FAILED, fail_reason=reason, **extra)
            case Crashed(error=error, delay=delay):
                self._move(
                    job,
                    JobState.RETRYABLE,
                    crashes=job.crashes + 1,
                    errors=(*job.errors, error),
                    # No delay: keep the job's place in line (due at once).
                    scheduled_at=now + delay if delay else job.scheduled_at,
                )
            case Cancelled(reason=reason):
                self._move(job, JobState.CANCELLED, cancel_reason=reason)
            case Released():
                self._move(job, JobState.AVAILABLE)
            case Snoozed(delay=delay):
                self._move(job, JobState.SCHEDULED, scheduled_at=now + delay)

    async def wait_ready(self, queues: Sequence[str], timeout: timedelta) -> None:
        """Wait for an enqueue or finish, or the timeout; see Broker.wait_ready."""
        if self._has_ready(queues):
            return
        condition = self._condition()
        async with condition:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(
                    _wait_seconds(timeout, self._next_due(queues), self._clock.now())
                ):
                    await condition.wait()

    def _has_ready(self, queues: Sequence[str]) -> bool:
        open_queues = set(queues) - self._paused
        if self._limits.of:
            now = self._clock.now()
            gate = self._limits.gate(self._jobs, self._tokens, now)
            if self._limits.ready(self._jobs, gate, open_queues):
                return True
        elif any(self._table.ready_head(q) is not None for q in open_queues):
            return True
        head = self._table.due_head()
        return head is not None and head[0] <= self._clock.now()

    def _next_due(self, queues: Sequence[str]) -> datetime | None:
        # Any queue's next due job or opening key: waking early for another queue's is harmless.
        head = self._table.due_head()
        times = (head[0] if head else None, self._limits.next_open(self._clock.now()))
        return min((at for at in times if at is not None), default=None)

    async def wait_done(self, job_ids: Sequence[JobId], timeout: timedelta) -> list[Job]:
        """Wait until every job is terminal, or the timeout; see Broker.wait_done."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout.total_seconds()
        pending = set(job_ids)  # shrinks as jobs end, so each wake-up checks only the rest
        condition = self._condition()
        async with condition:
            while True:
                pending = {i for i in pending if i in self._jobs and not _ended(self._jobs[i])}
                left = deadline - loop.time()
                if not pending or left <= 0:
                    return [self._jobs[i] for i in job_ids if i in self._jobs]
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await condition.wait()

    # -- maintenance ---------------------------------------------------------------------------

    async def reclaim(
        self,
        *,
        limit: int,
        lease: timedelta,
        workers_gone: Sequence[str] = (),
    ) -> list[Claimed]:
        """Take over expired leases and those of gone workers; see Broker.reclaim."""
        self.calls += 1
        now = self._clock.now()
        gone = set(workers_gone)
        lapsed = sorted(
            (
                job
                for job in self._jobs.values()
                if job.state is JobState.RUNNING
                and job.lease_expires_at is not None
                and (job.lease_expires_at <= now or job.worker_id in gone)
            ),
            key=lambda job: (job.lease_expires_at, job.id),
        )[:limit]
        taken: list[Claimed] = []
        for job in lapsed:
            token = new_token()
            moved = job.evolve(lease_expires_at=now + lease)
            self._jobs[job.id] = moved
            self._tokens[job.id] = token
            taken.append(Claimed(moved, Lease(job.id, job.attempt, token, now + lease)))
        return taken

    async def promote(self, *, limit: int) -> int:
        """Due scheduled and retryable jobs become available; see Broker.promote."""
        self.calls += 1
        moved = self._promote_due(limit)
        if moved:
            await self._notify()
        return moved

    async def prune(self, *, finished_before: datetime, limit: int) -> int:
        """Drop expired results and old terminal jobs; see Broker.prune."""
        self.calls += 1
        now = self._clock.now()
        deleted = 0
        for job in list(self._jobs.values()):
            if job.state not in TERMINAL_STATES:
                continue
            if (
                job.finished_at is not None
                and job.finished_at < finished_before
                and deleted < limit
            ):
                self._delete(job.id)
                deleted += 1
            elif (
                job.result is not None
                and job.result_expires_at is not None
                and job.result_expires_at <= now
            ):
                self._jobs[job.id] = job.evolve(result=None)
        return deleted

    def _delete(self, job_id: JobId) -> None:
        job = self._jobs.pop(job_id)
        self._tokens.pop(job_id, None)
        self._limits.of.pop(job_id, None)
        key = (job.task, job.idempotency_key or "")
        if job.idempotency_key and self._keys.get(key) == job_id:
            del self._keys[key]

    # -- inspecting ----------------------------------------------------------------------------

    async def get(self, job_ids: Sequence[JobId]) -> list[Job]:
        """Jobs by id, in order; unknown ids left out."""
        self.calls += 1
        return [self._jobs[i] for i in job_ids if i in self._jobs]

    async def list_jobs(self, query: JobQuery) -> Page:
        """A page of jobs, newest first; see Broker.list_jobs."""
        self.calls += 1
        matching = sorted(
            (j for j in self._jobs.values() if matches(j, query)), key=lambda j: j.id, reverse=True
        )
        page = matching[: query.limit]
        more = len(matching) > query.limit
        return Page(page, page[-1].id if more and page else None)

    async def counts(self, queues: Sequence[str] | None = None) -> Counts:
        """Jobs per queue and state, and each queue's oldest due waiting instant."""
        self.calls += 1
        wanted = set(queues) if queues is not None else None
        now = self._clock.now()
        by_queue: dict[str, dict[JobState, int]] = {}
        oldest: dict[str, datetime] = {}
        for name in self._queues if wanted is None else wanted:
            by_queue.setdefault(name, {})
        for job in self._jobs.values():
            if wanted is None or job.queue in wanted:
                states = by_queue.setdefault(job.queue, {})
                states[job.state] = states.get(job.state, 0) + 1
                due = job.scheduled_at
                if job.state in WAITING_STATES and due is not None and due <= now:
                    oldest[job.queue] = min(due, oldest.get(job.queue, due))
        return Counts(by_queue, frozenset(self._paused), oldest)

    async def workers(self) -> list[WorkerInfo]:
        """Workers seen within WORKER_TTL."""
        self.calls += 1
        cutoff = self._clock.now() - WORKER_TTL
        return [w for w in self._workers.values() if w.seen_at is not None and w.seen_at >= cutoff]

    # -- controlling ---------------------------------------------------------------------------

    async def cancel(self, job_ids: Sequence[JobId], *, reason: str = "requested") -> list[Job]:
        """Cancel waiting jobs now and request it of running ones; see Broker.cancel."""
        self.calls += 1
        why = CancelReason(reason)
        ended: list[JobId] = []
        for job_id in job_ids:
            job = self._jobs.get(job_id)
            if job is None or job.state in TERMINAL_STATES:
                continue
            if job.state is JobState.RUNNING:
                self._jobs[job_id] = job.evolve(cancel_requested=True)
            else:
                # Every job asked ends with the reason given; their dependents are settled after.
                self._move(job, JobState.CANCELLED, settle=False, cancel_reason=why)
                ended.append(job_id)
        for job_id in ended:
            self._settle(job_id, completed=False)
        await self._notify()
        return [self._jobs[i] for i in job_ids if i in self._jobs]

    async def requeue(self, job_ids: Sequence[JobId]) -> list[Job]:
        """Failed and cancelled jobs run again with fresh budgets; see Broker.requeue."""
        self.calls += 1
        now = self._clock.now()
        for job_id in job_ids:
            job = self._jobs.get(job_id)
            if job is None or job.state not in (JobState.FAILED, JobState.CANCELLED):
                continue
            self._move(
                job,
                JobState.AVAILABLE,
                failures=0,
                crashes=0,
                fail_reason=None,
                cancel_reason=None,
                cancel_requested=False,
                scheduled_at=now,
                finished_at=None,
                result=None,
                result_expires_at=None,
            )
        await self._notify()
        return [self._jobs[i] for i in job_ids if i in self._jobs]

    async def purge(self, queue: str, states: Sequence[JobState]) -> int:
        """Delete the queue's jobs in `states`, never running ones; their dependents are
        settled as a cancel settles them (a purged job ended without completing)."""
        self.calls += 1
        doomed = [
            j.id
            for j in self._jobs.values()
            if j.queue == queue and j.state in states and j.state is not JobState.RUNNING
        ]
        for job_id in doomed:
            self._dependencies.drop(job_id)
            self._delete(job_id)
        for job_id in doomed:
            self._settle(job_id, completed=False)
        await self._notify()
        return len(doomed)

    # -- routing -------------------------------------------------------------------------------

    async def topology(self) -> Topology:
        """See Broker.topology."""
        return self._topology.snapshot()

    async def declare(self, exchanges: Sequence[Exchange], bindings: Sequence[Binding]) -> None:
        """See Broker.declare."""
        self._topology.declare(exchanges, bindings)

    async def unbind(self, bindings: Sequence[Binding]) -> int:
        """See Broker.unbind."""
        return self._topology.unbind(bindings)

    # -- schedules -----------------------------------------------------------------------------

    async def schedules(self, names: Sequence[str] | None = None) -> list[ScheduleRecord]:
        """See Broker.schedules."""
        return self._schedules.select(names)

    async def put_schedules(self, entries: Sequence[ScheduleEntry], *, replace: bool) -> list[bool]:
        """See Broker.put_schedules."""
        return self._schedules.put(entries, replace_=replace, now=self._clock.now())

    async def remove_schedules(self, names: Sequence[str]) -> int:
        """See Broker.remove_schedules."""
        return self._schedules.remove(names)

    async def pause_schedules(self, names: Sequence[str], *, paused: bool) -> int:
        """See Broker.pause_schedules."""
        return self._schedules.pause(names, paused=paused, now=self._clock.now())

    async def fire(self, firing: Firing) -> bool:
        """See Broker.fire."""
        if not self._schedules.holds(firing):
            return False
        now = self._clock.now()
        stored = self._insert(firing.specs, now)
        self._schedules.advance(firing, stored[-1].job_id if stored else None, now)
        if stored:
            await self._notify()
        return True

    async def pause(self, queues: Sequence[str]) -> None:
        """Claims skip these queues."""
        self._paused.update(queues)
        self._queues.update(queues)

    async def resume(self, queues: Sequence[str]) -> None:
        """Claims take these queues again."""
        self._paused.difference_update(queues)
        await self._notify()

    @property
    def location(self) -> str:
        """Where the jobs live, for logs: this process's memory."""
        return "memory://"


def _ended(job: Job) -> bool:
    return job.state in TERMINAL_STATES


def _wait_seconds(timeout: timedelta, next_due: datetime | None, now: datetime) -> float:
    seconds = timeout.total_seconds()
    if next_due is not None:
        seconds = min(seconds, max(0.0, (next_due - now).total_seconds()))
    return max(0.0, seconds)
