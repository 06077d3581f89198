"""The Broker contract: every verb any broker offers, and the records those verbs return.

Each write takes a batch (one job is a batch of one) and is atomic: it lands whole or not at
all. Claims hand back raw payloads for the worker to decode, so a bad payload never breaks a
broker. Time: brokers read the injected Clock; tests pass a FakeClock, production the system
clock. The memory broker is the reference; tests/conformance holds every broker to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Protocol

from errands.job import Job, JobId, JobSpec, JobState, Progress
from errands.lease import Lease
from errands.outcome import Outcome


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a broker does; a gap carries the reason the conformance suite prints as it skips."""

    name: str
    notify: bool = True  # wait_ready/wait_done are pushed, not polled
    cross_process: bool = True  # workers in other processes share the jobs
    transactional_enqueue: bool = False
    priority_levels: int | None = None  # None: any int
    gaps: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Enqueued:
    """One spec's fate: the id it is stored under and whether it matched an existing key."""

    job_id: JobId
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job now running under `lease`; `job.payload` is still undecoded."""

    job: Job
    lease: Lease


@dataclass(frozen=True, slots=True)
class ClaimOptions:
    """What one claim asks for. Rate and concurrency limits travel with the jobs
    (JobSpec.limits), so a claim needs nothing more to enforce them."""

    queues: Sequence[str]
    n: int
    lease: timedelta
    worker_id: str

    def __post_init__(self) -> None:
        # A tuple, so the value stays frozen whatever sequence the caller passed.
        object.__setattr__(self, "queues", tuple(self.queues))


@dataclass(frozen=True, slots=True)
class Extended:
    """Leases whose token held (with their new expiry) and the ids with a cancel pending."""

    leases: list[Lease]
    cancel_requested: list[JobId]


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker's heartbeat, carried by extend; `seen_at` is set by the broker."""

    id: str
    hostname: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    started_at: datetime
    running: int = 0
    seen_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class JobQuery:
    """A filter for list_jobs; pages go by id (keyset), newest first.

    `workflow` keeps the steps of one workflow (Job.workflow_id); `idempotency_key` the jobs
    that hold that key, whatever their task. Both are index-backed on every broker.
    """

    queue: str | None = None
    states: tuple[JobState, ...] = ()
    task: str | None = None
    limit: int = 100
    before_id: JobId | None = None  # the cursor: ids strictly older than this
    workflow: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of list_jobs; `next_cursor` feeds JobQuery.before_id, None on the last page."""

    jobs: list[Job]
    next_cursor: JobId | None


@dataclass(frozen=True, slots=True)
class Counts:
    """Jobs per queue and state, whether each queue is paused, and since when each queue's
    oldest due job has waited.

    `oldest_waiting[queue]` is the earliest `scheduled_at` (the instant a job became due: its
    enqueue, ETA or retry time) of the queue's waiting jobs (available, or scheduled and
    retryable ones already due but not yet promoted); a queue with none is left out.
    """

    by_queue: Mapping[str, Mapping[JobState, int]]
    paused: frozenset[str] = frozenset()
    oldest_waiting: Mapping[str, datetime] = field(default_factory=dict)

    def total(self, state: JobState) -> int:
        """Jobs in `state` across all queues."""
        return sum(states.get(state, 0) for states in self.by_queue.values())


#: Skipped-slot records a broker keeps per schedule: the newest, so a long outage of a
#: schedule that fires every second costs one record, not one per slot.
SKIPPED_KEEP: Final = 20


@dataclass(frozen=True, slots=True)
class SkippedSlots:
    """Slots of a schedule that passed without a run: `count` of them from `first` to `last`,
    and why (the misfire policy's word: "missed", "coalesced", "expired")."""

    first: datetime
    last: datetime
    count: int
    reason: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """A schedule as put_schedules writes it: its name and its definition, a JSON text that
    brokers store without reading (scheduling/schedule.py writes and reads it)."""

    name: str
    definition: str


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A stored schedule and its state.

    `cursor` is the fence of exactly-once: every slot at or before it has been handled (run or
    skipped), and only a fire() that read this same cursor may move it.
    """

    name: str
    definition: str
    paused: bool
    cursor: datetime
    created_at: datetime
    updated_at: datetime
    last_slot: datetime | None = None
    last_job_id: JobId | None = None
    last_fired_at: datetime | None = None
    skipped: tuple[SkippedSlots, ...] = ()  # oldest first, at most SKIPPED_KEEP


@dataclass(frozen=True, slots=True)
class Firing:
    """One step of a schedule: the jobs for its due slots and the slots it skips, applied only
    if the schedule's cursor still equals `cursor` (another scheduler may have moved it)."""

    name: str
    cursor: datetime
    advance_to: datetime
    specs: tuple[JobSpec, ...] = ()
    skipped: tuple[SkippedSlots, ...] = ()
    last_slot: datetime | None = None  # the slot of the newest spec


@dataclass(frozen=True, slots=True)
class Exchange:
    """A named router: "direct" (the key equals the binding's), "topic" (AMQP patterns: `*`
    one word, `#` zero or more, words split on "."), or "fanout" (every binding). A message no
    binding matches raises errands.Unroutable, or is dropped when `unroutable` is "drop"."""

    name: str
    kind: str = "direct"
    unroutable: str = "raise"


@dataclass(frozen=True, slots=True)
class Binding:
    """Routes an exchange's messages whose key matches `key` to `destination`: a queue, or for
    the events exchange (pub/sub) a subscribing task's name."""

    exchange: str
    destination: str
    key: str = ""


@dataclass(frozen=True, slots=True)
class Topology:
    """Every exchange and binding a broker stores, each sorted."""

    exchanges: tuple[Exchange, ...] = ()
    bindings: tuple[Binding, ...] = ()


class Broker(Protocol):
    """Stores all state and hands jobs out; the only code that talks to a server."""

    capabilities: Capabilities

    @property
    def location(self) -> str:
        """Where the jobs are stored, for logs and messages (a file's absolute path, a server's
        address without its password)."""
        ...

    async def open(self) -> None:
        """Connect (and migrate); idempotent."""
        ...

    async def close(self) -> None:
        """Disconnect; idempotent. Nothing stored is lost."""
        ...

    async def migrate(self) -> None:
        """Apply pending schema migrations under a lock; idempotent."""
        ...

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Store every spec in one atomic write, in order.

        Idempotency keys are scoped to the task and unique atomically (a unique index or its
        equivalent, never check-then-insert): a spec whose (task, key) matches a live job, or a
        finished one whose result has not expired, stores nothing and returns that job's id with
        `duplicate=True`. A spec whose id is already stored (a producer resending a batch whose
        reply it lost) stores nothing and returns its own id with `duplicate=True`, whatever
        the stored job's state: a resend never resets a job. A spec with a future
        `scheduled_at` is `scheduled`, otherwise `available`.

        A spec with `depends_on` (ids of specs earlier in the same call) is stored `pending`
        with its dependencies. Whatever write ends a job (finish, cancel) applies, in the same
        atomic write, the rule of brokers/dependencies.py to the pending jobs that wait for it:
        cancelled at once (reason parent_failed) if it did not complete and their `on_failure`
        is "cancel", else released once their last dependency has ended (`available`, or
        `scheduled` while their `scheduled_at` is ahead). Each dependency counts once, so a
        dependent is released at most once. A broker that cannot do this declares the gap
        "workflows".
        """
        ...

    async def claim(self, options: ClaimOptions) -> list[Claimed]:
        """Move up to `options.n` claimable jobs of `options.queues` to `running` in one atomic
        write, held by `options.worker_id`.

        Due `scheduled` and `retryable` jobs are promoted first. Order: priority (high first),
        then scheduled_at, then id. Paused queues are skipped. Each job gets attempt + 1, a
        fresh token, no pending cancel, and expires_at = now + lease.

        A job whose limits (JobSpec.limits, brokers/gate.py) do not admit it now stays
        `available` and later jobs are claimed instead; the limits' state is read and written
        in the same atomic write, so they hold across every claimer (docs/limits.md).
        """
        ...

    async def extend(
        self,
        leases: Sequence[Lease],
        lease: timedelta,
        *,
        heartbeat: WorkerInfo,
        progress: Mapping[JobId, Progress],
    ) -> Extended:
        """Set expires_at = now + lease for each lease whose token holds; record the heartbeat
        and progress in the same write. A lease that lost its token is left out of the reply."""
        ...

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply each outcome whose token holds, in one write; False: lease lost, nothing changed.

        Each outcome is an explicit transition, decided by policy.py; the broker only stores it.
        Completed stores the result until now + result_ttl; Retrying counts a failure and waits
        `delay` as `retryable`; Crashed counts a crash and is `retryable` after `delay` (no
        delay: due at once, keeping its scheduled_at so it is not queued behind later
        arrivals); Failed dead-letters, counting a crash when its reason is `crashed`, else a
        failure when it carries an error; Cancelled ends; Released is available again; Snoozed
        is scheduled.
        """
        ...

    async def wait_ready(self, queues: Sequence[str], timeout: timedelta) -> None:
        """Return when a job in `queues` may be claimable, or at the timeout: a hint only."""
        ...

    async def wait_done(self, job_ids: Sequence[JobId], timeout: timedelta) -> list[Job]:
        """Return the jobs once all are terminal, or as they are at the timeout.

        Unknown ids are left out of the reply.
        """
        ...

    async def reclaim(
        self,
        *,
        limit: int,
        lease: timedelta,
        workers_gone: Sequence[str] = (),
    ) -> list[Claimed]:
        """Take over up to `limit` running jobs whose lease expired, or whose worker is in
        `workers_gone`, in one atomic write: each gets a fresh token and expires_at = now +
        lease; attempt, worker_id and a pending cancel are kept.

        The old holder's token no longer holds, so its late writes are refused; the caller
        (policy.rescue) settles each job with finish(). A caller that dies first leaves the
        jobs to expire again and be reclaimed by another.
        """
        ...

    async def promote(self, *, limit: int) -> int:
        """Due `scheduled` and `retryable` jobs -> `available`; returns how many moved."""
        ...

    async def prune(self, *, finished_before: datetime, limit: int) -> int:
        """Drop results past result_expires_at and delete terminal jobs finished before
        `finished_before`; returns the jobs deleted."""
        ...

    async def get(self, job_ids: Sequence[JobId]) -> list[Job]:
        """The jobs with these ids, in the order asked; unknown ids are left out."""
        ...

    async def list_jobs(self, query: JobQuery) -> Page:
        """A filtered page, newest first, by keyset on id."""
        ...

    async def counts(self, queues: Sequence[str] | None = None) -> Counts:
        """Jobs per queue and state (all queues when None), the paused queues and each
        queue's oldest due waiting instant, read by the broker's clock."""
        ...

    async def workers(self) -> list[WorkerInfo]:
        """Workers whose last heartbeat is recent."""
        ...

    async def cancel(self, job_ids: Sequence[JobId], *, reason: str = "requested") -> list[Job]:
        """Waiting (and pending) jobs end `cancelled` at once; running ones get a cancel request
        that extend reports and rescue applies; terminal ones are unchanged. Returns the jobs
        after."""
        ...

    async def requeue(self, job_ids: Sequence[JobId]) -> list[Job]:
        """`failed` and `cancelled` jobs -> `available` with fresh failure and crash budgets;
        other states are unchanged. Returns the jobs after."""
        ...

    async def purge(self, queue: str, states: Sequence[JobState]) -> int:
        """Delete jobs of `queue` in the given (non-running) states; returns how many."""
        ...

    # -- routing (routing.py decides where a message goes; a broker stores the topology) --------

    async def topology(self) -> Topology:
        """The stored exchanges (by name) and bindings (by exchange, destination, key)."""
        ...

    async def declare(self, exchanges: Sequence[Exchange], bindings: Sequence[Binding]) -> None:
        """Store exchanges (a name declared again takes the new kind and flag) and bindings
        (one of each (exchange, destination, key)), in one atomic write."""
        ...

    async def unbind(self, bindings: Sequence[Binding]) -> int:
        """Delete these bindings; returns how many existed."""
        ...

    # -- schedules (scheduling/ decides every slot; a broker stores and fences) ----------------

    async def schedules(self, names: Sequence[str] | None = None) -> list[ScheduleRecord]:
        """The stored schedules (all when None, else those of `names` that exist), by name."""
        ...

    async def put_schedules(self, entries: Sequence[ScheduleEntry], *, replace: bool) -> list[bool]:
        """Store the entries in one atomic write; True for each entry that changed something.

        A new name is stored unpaused with cursor = created_at = now, so its first slot is
        after now. An existing name is changed only with `replace` and a different definition:
        the definition is replaced and cursor = now (a changed schedule starts afresh); its
        paused flag, last run and skipped records are kept.
        """
        ...

    async def remove_schedules(self, names: Sequence[str]) -> int:
        """Delete these schedules (not their jobs); returns how many existed."""
        ...

    async def pause_schedules(self, names: Sequence[str], *, paused: bool) -> int:
        """Set the paused flag; returns how many schedules changed. Resuming also sets the
        cursor to now: slots that passed while paused were refused, not missed."""
        ...

    async def fire(self, firing: Firing) -> bool:
        """In one atomic write, if the schedule exists, is not paused and its cursor equals
        `firing.cursor`: enqueue `firing.specs` as enqueue_many does, set cursor =
        `advance_to`, record the last slot, the stored id of the last spec and now as its last
        run when there are specs, and append `firing.skipped` (keeping the newest
        SKIPPED_KEEP). Otherwise change nothing and return False."""
        ...

    async def pause(self, queues: Sequence[str]) -> None:
        """Claims skip these queues until resumed."""
        ...

    async def resume(self, queues: Sequence[str]) -> None:
        """Undo pause."""
        ...
