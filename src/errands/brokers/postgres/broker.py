"""PostgresBroker: the Broker contract on PostgreSQL, one statement per verb.

Every verb is one transaction, and all but an enqueue with idempotency keys and a schedule's
firing are one statement (queries.sql), so each is atomic and one round trip whatever the batch
size: batches travel as arrays. Claims take rows with FOR UPDATE SKIP LOCKED, so any number of
workers on any number of hosts claim side by side without waiting for each other. Time is the
server's own (`now()`), so every host judges leases and due times by one clock; a test's
injected clock is passed in instead. Writes notify waiters (LISTEN/NOTIFY) in their own transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import psycopg

from errands.brokers import waiters
from errands.brokers.contract import (
    Capabilities,
    Claimed,
    ClaimOptions,
    Counts,
    Enqueued,
    Extended,
    Firing,
    JobQuery,
    Page,
    ScheduleEntry,
    ScheduleRecord,
    WorkerInfo,
)
from errands.brokers.postgres import rows, schedules, transactional
from errands.brokers.postgres.database import Database
from errands.brokers.postgres.notices import Notices
from errands.brokers.postgres.pool import Connection
from errands.brokers.postgres.sql import Q
from errands.brokers.postgres.url import parse_url
from errands.brokers.waiters import Readiness
from errands.clock import Clock, SystemClock
from errands.errors import BrokerError
from errands.job import CancelReason, Job, JobId, JobSpec, JobState, Progress
from errands.lease import Lease
from errands.outcome import Outcome

WORKER_TTL: Final = timedelta(seconds=60)
#: Due jobs a claim promotes at most (of every queue); the promoter moves any beyond.
PROMOTE_ON_CLAIM: Final = 1000
#: What PostgreSQL reads as the start of the current transaction: the server's clock.
SERVER_NOW: Final = "now"
#: Rounds of an enqueue that met a key whose owner vanished before it could be named.
ENQUEUE_ROUNDS: Final = 5

Key = tuple[str, str]  # (task, idempotency key)
T = TypeVar("T")


class PostgresBroker:
    """Jobs in one schema of a PostgreSQL database, shared by every worker and producer that
    opens the same URL and schema.

    Durability is PostgreSQL's: a write that returned is committed (and, with the default
    `synchronous_commit=on`, on disk). A server that cannot be reached, is restarting or shutting
    down raises BrokerUnavailable; a full disk raises BrokerFull. Either way the statement
    changed nothing.
    """

    capabilities = Capabilities(
        name="postgres", notify=True, cross_process=True, transactional_enqueue=True
    )

    def __init__(self, url: str, *, clock: Clock | None = None) -> None:
        self._url = parse_url(url)
        self._clock = clock or SystemClock()
        self._server_time = isinstance(self._clock, SystemClock)
        self._db = Database(self._url)
        self._notices: Notices | None = None
        self._opening: asyncio.Lock | None = None

    @classmethod
    def from_url(cls, url: str, *, clock: Clock) -> PostgresBroker:
        """`postgresql://user[:password]@host:port/db?schema=NAME`; see url.py."""
        return cls(url, clock=clock)

    @property
    def location(self) -> str:
        """The server's address, database and schema, never the password."""
        return self._url.location

    @property
    def schema(self) -> str:
        """The schema holding this app's tables."""
        return self._url.schema

    @property
    def calls(self) -> int:
        """Statements (transactions) run so far, one per verb, for benchmarks."""
        return self._db.calls

    @property
    def notices(self) -> Notices | None:
        """The wake-up listener (None until opened), for tools and tests."""
        return self._notices

    def _now(self) -> datetime | str:
        # The system clock means "now" at the server: every host then shares its clock.
        return SERVER_NOW if self._server_time else self._clock.now()

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Apply pending migrations (creating the schema if needed) and open the connection
        pool in the running loop; idempotent."""
        if self._db.opened:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._db.opened:
                return
            await self.migrate()
            await self._db.open()
            self._notices = Notices.of(self._url)

    async def close(self) -> None:
        """Stop listening, wake every waiter and close the pool; idempotent. Nothing stored is
        lost."""
        notices, self._notices = self._notices, None
        if notices is not None:
            await notices.close()
        await self._db.close()

    async def migrate(self) -> None:
        """Apply missing numbered migrations in one transaction under an advisory lock on the
        schema; safe to race between processes."""
        await self._db.migrate()

    # -- running statements --------------------------------------------------------------------

    async def _run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """`work(connection)` on a pooled connection, opening the broker first if needed."""
        if not self._db.opened:
            await self.open()
        return await self._db.run(work)

    async def _fetch(self, name: str, params: Mapping[str, Any]) -> tuple[list[Any], list[str]]:
        """Rows and column names of query `name`, in one autocommit transaction."""

        async def work(connection: Connection) -> tuple[list[Any], list[str]]:
            cursor = await connection.execute(Q[name], params)
            names = [column.name for column in cursor.description or ()]
            return await cursor.fetchall(), names

        return await self._run(work)

    async def _one(self, name: str, params: Mapping[str, Any]) -> Any:
        found, _ = await self._fetch(name, params)
        return found[0]

    def _notices_now(self) -> Notices:
        if self._notices is None:
            raise BrokerError(f"the broker for {self.location} is closed")
        return self._notices

    # -- producing -----------------------------------------------------------------------------

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Store every spec in one statement (a short transaction when the specs carry
        idempotency keys); see Broker.enqueue_many."""
        if not specs:
            return []
        if all(spec.idempotency_key is None for spec in specs):
            return await self._run(lambda connection: self._enqueue(connection, specs))

        async def keyed(connection: Connection) -> list[Enqueued]:
            async with connection.transaction():
                return await self._enqueue_keyed(connection, specs)

        return await self._run(keyed)

    async def _enqueue_keyed(self, connection: Any, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Release the expired keys the specs name, then insert (inside a transaction)."""
        keys = [spec for spec in specs if spec.idempotency_key is not None]
        if keys:
            await connection.execute(
                Q["enqueue_release"],
                {
                    "tasks": [spec.task for spec in keys],
                    "keys": [spec.idempotency_key for spec in keys],
                    "now": self._now(),
                },
            )
        return await self._enqueue(connection, specs)

    async def enqueue_in_async(
        self, connection: psycopg.AsyncConnection[Any], specs: Sequence[JobSpec]
    ) -> list[Enqueued]:
        """Store the specs on the caller's connection, inside the caller's transaction: they
        exist, and wake workers, only if it commits (see transactional.py)."""
        return await transactional.enqueue_in(connection, self._url.schema, specs, self)

    def enqueue_in(
        self, connection: psycopg.Connection[Any], specs: Sequence[JobSpec]
    ) -> list[Enqueued]:
        """Blocking twin of `enqueue_in_async`, for a psycopg `Connection`."""
        return transactional.run_now(
            transactional.enqueue_in(
                transactional.Synchronous(connection), self._url.schema, specs, self
            )
        )

    async def _enqueue(self, connection: Connection, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Insert the specs and name the job each duplicate matched, as if they were stored
        one by one in order (the memory broker's rule: a stored id first, then a live key).

        The insert itself decides every conflict with stored jobs and with racing producers
        (the unique indexes). Within the batch, a spec whose id or (task, key) an earlier one
        also has waits for a later round, once the earlier one is settled: usually one round,
        two when the batch repeats itself."""
        replies: list[Enqueued | None] = [None] * len(specs)
        pending = list(range(len(specs)))
        for _ in range(len(specs) + ENQUEUE_ROUNDS):
            if not pending:
                return [reply for reply in replies if reply is not None]
            chosen, later = _first_of_each(specs, pending)
            stored = await self._insert(connection, [specs[i] for i in chosen])
            for i in chosen:
                if specs[i].id in stored:
                    replies[i] = Enqueued(specs[i].id)
            rest = sorted([i for i in chosen if replies[i] is None] + later)
            found = await self._owners(connection, [specs[i] for i in rest])
            pending = []
            blocked_ids: set[JobId] = set()
            blocked_keys: set[Key] = set()
            for i, (id_stored, owner) in zip(rest, found, strict=True):
                spec = specs[i]
                key = _key(spec)
                if spec.id in blocked_ids or (key is not None and key in blocked_keys):
                    pass  # an earlier spec of the batch may still take its id or key
                elif id_stored:  # a resend: never reset the stored job
                    replies[i] = Enqueued(spec.id, duplicate=True)
                    continue
                elif owner is not None:
                    replies[i] = Enqueued(owner, duplicate=True)
                    continue
                # Neither its id nor its key is taken (an earlier spec of the batch that held
                # them turned out a duplicate, or a key's owner went meanwhile): insert it next.
                pending.append(i)
                blocked_ids.add(spec.id)
                if key is not None:
                    blocked_keys.add(key)
        raise BrokerError(f"enqueue at {self.location}: idempotency keys kept changing hands")

    async def _insert(self, connection: Connection, specs: Sequence[JobSpec]) -> set[JobId]:
        params = rows.enqueue_params(specs)
        params.update(now=self._now(), ready=self._url.ready_channel)
        cursor = await connection.execute(Q["enqueue"], params)
        found = await cursor.fetchone()
        assert found is not None
        return set(found[0])

    async def _owners(
        self, connection: Connection, specs: Sequence[JobSpec]
    ) -> list[tuple[bool, JobId | None]]:
        """For each spec: whether its id is stored, and which job holds its (task, key)."""
        if not specs:
            return []
        cursor = await connection.execute(
            Q["enqueue_owners"],
            {
                "ids": [spec.id for spec in specs],
                "tasks": [spec.task for spec in specs],
                "keys": [spec.idempotency_key for spec in specs],
            },
        )
        return [(bool(stored), owner) for _, stored, owner in await cursor.fetchall()]

    # -- working -------------------------------------------------------------------------------

    async def claim(self, options: ClaimOptions) -> list[Claimed]:
        """Lease up to `options.n` jobs in one statement; see Broker.claim."""
        if options.n <= 0:
            return []
        found, names = await self._fetch(
            "claim",
            {
                "queues": list(dict.fromkeys(options.queues)),
                "n": options.n,
                "lease": options.lease,
                "worker_id": options.worker_id,
                "promote_limit": PROMOTE_ON_CLAIM,
                "now": self._now(),
                "ready": self._url.ready_channel,
            },
        )
        return rows.claimed_from_rows([row for row in found if row[0] is not None], names)

    async def extend(
        self,
        leases: Sequence[Lease],
        lease: timedelta,
        *,
        heartbeat: WorkerInfo,
        progress: Mapping[JobId, Progress],
    ) -> Extended:
        """Push back every held lease and record the heartbeat in one statement; see
        Broker.extend."""
        params = rows.extend_params(leases, progress, heartbeat)
        params.update(lease=lease, now=self._now())
        found, _ = await self._fetch("extend", params)
        return rows.extended_from_rows(found, leases)

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply every outcome whose lease holds, in one statement; see Broker.finish.

        A second outcome for one lease in the same batch is refused, as it would be later."""
        if not outcomes:
            return []
        first: dict[tuple[JobId, str], int] = {}
        for position, outcome in enumerate(outcomes):
            first.setdefault((outcome.lease.job_id, outcome.lease.token), position)
        sent = sorted(first.values())
        params = rows.finish_params([outcomes[i] for i in sent])
        params.update(now=self._now(), ready=self._url.ready_channel, done=self._url.done_channel)
        applied, *_ = await self._one("finish", params)
        moved = {sent[position - 1] for position in applied}
        return [i in moved for i in range(len(outcomes))]

    async def wait_ready(self, queues: Sequence[str], timeout: timedelta) -> None:
        """Return once a job of `queues` may be claimable, or at the timeout; a hint only (see
        waiters.wait_ready)."""
        if not self._db.opened:
            await self.open()
        notices = self._notices_now()
        await notices.listen()

        async def read() -> Readiness:
            ready, due_in = await self._one(
                "readiness", {"queues": list(queues), "now": self._now()}
            )
            return bool(ready), due_in

        await waiters.wait_ready(notices, queues, timeout, read)

    async def wait_done(self, job_ids: Sequence[JobId], timeout: timedelta) -> list[Job]:
        """Return the jobs once all are terminal, or as they are at the timeout (or when the
        broker is closed meanwhile)."""
        if not self._db.opened:
            await self.open()
        notices = self._notices_now()
        await notices.listen()
        return await waiters.wait_done(
            notices, job_ids, timeout, self.get, lambda: self._notices is notices
        )

    # -- maintenance ---------------------------------------------------------------------------

    async def reclaim(
        self,
        *,
        limit: int,
        lease: timedelta,
        workers_gone: Sequence[str] = (),
    ) -> list[Claimed]:
        """Take over expired leases and those of gone workers; see Broker.reclaim. Only the
        maintenance leader of the schema reclaims at a time; the others get nothing."""
        if limit <= 0:
            return []
        found, names = await self._fetch(
            "reclaim",
            {
                "limit": limit,
                "lease": lease,
                "gone": list(workers_gone),
                "now": self._now(),
                "leader": self._url.lock_key("reclaim"),
            },
        )
        return rows.claimed_from_rows(found, names)

    async def promote(self, *, limit: int) -> int:
        """Due scheduled and retryable jobs become available; see Broker.promote. Only the
        maintenance leader of the schema promotes at a time; the others move nothing."""
        if limit <= 0:
            return 0
        moved, _ = await self._one(
            "promote",
            {
                "limit": limit,
                "now": self._now(),
                "ready": self._url.ready_channel,
                "leader": self._url.lock_key("promote"),
            },
        )
        return int(moved)

    async def prune(self, *, finished_before: datetime, limit: int) -> int:
        """Drop expired results and old terminal jobs; see Broker.prune. Only the maintenance
        leader of the schema prunes at a time; the others delete nothing."""
        (deleted,) = await self._one(
            "prune",
            {
                "finished_before": finished_before,
                "limit": max(0, limit),
                "now": self._now(),
                "leader": self._url.lock_key("prune"),
            },
        )
        return int(deleted)

    # -- inspecting ----------------------------------------------------------------------------

    async def get(self, job_ids: Sequence[JobId]) -> list[Job]:
        """Jobs by id, in the order asked; unknown ids left out."""
        if not job_ids:
            return []
        found, names = await self._fetch("jobs_by_ids", {"ids": list(job_ids)})
        by_id = {job.id: job for job in rows.jobs_from_rows(found, names)}
        return [by_id[i] for i in job_ids if i in by_id]

    async def list_jobs(self, query: JobQuery) -> Page:
        """A page of jobs, newest first, by keyset on id."""
        found, names = await self._fetch(
            "jobs_page",
            {
                "queue": query.queue,
                "states": [str(state) for state in query.states] if query.states else None,
                "task": query.task,
                "before_id": query.before_id,
                "limit": query.limit + 1,  # one more than asked tells whether another page exists
            },
        )
        jobs = rows.jobs_from_rows(found[: query.limit], names)
        more = len(found) > query.limit
        return Page(jobs, jobs[-1].id if more and jobs else None)

    async def counts(self, queues: Sequence[str] | None = None) -> Counts:
        """Jobs per queue and state, and the paused queues; every known queue (or each asked)
        is listed, even if empty."""
        wanted = None if queues is None else list(queues)
        found, _ = await self._fetch("counts", {"queues": wanted})
        return rows.counts_from_rows(found, wanted)

    async def workers(self) -> list[WorkerInfo]:
        """Workers whose last heartbeat is within the last minute."""
        found, _ = await self._fetch("workers_seen", {"ttl": WORKER_TTL, "now": self._now()})
        return [rows.worker_from_row(row) for row in found]

    # -- controlling ---------------------------------------------------------------------------

    async def cancel(self, job_ids: Sequence[JobId], *, reason: str = "requested") -> list[Job]:
        """Cancel waiting jobs now and request it of running ones; see Broker.cancel."""
        why = CancelReason(reason)  # an unknown reason is refused before anything is written
        if job_ids:
            await self._fetch(
                "cancel",
                {
                    "ids": list(job_ids),
                    "reason": str(why),
                    "now": self._now(),
                    "done": self._url.done_channel,
                },
            )
        return await self.get(job_ids)

    async def requeue(self, job_ids: Sequence[JobId]) -> list[Job]:
        """Failed and cancelled jobs run again with fresh budgets; see Broker.requeue."""
        if job_ids:
            await self._fetch(
                "requeue",
                {"ids": list(job_ids), "now": self._now(), "ready": self._url.ready_channel},
            )
        return await self.get(job_ids)

    async def purge(self, queue: str, states: Sequence[JobState]) -> int:
        """Delete the queue's jobs in `states`, never running ones."""
        deleted, _ = await self._one(
            "purge",
            {
                "queue": queue,
                "states": [str(state) for state in states],
                "done": self._url.done_channel,
            },
        )
        return int(deleted)

    async def pause(self, queues: Sequence[str]) -> None:
        """Claims skip these queues until resumed."""
        if queues:
            await self._fetch_none("pause", {"queues": list(queues)})

    async def resume(self, queues: Sequence[str]) -> None:
        """Claims take these queues again."""
        if queues:
            await self._fetch("resume", {"queues": list(queues), "ready": self._url.ready_channel})

    async def _fetch_none(self, name: str, params: Mapping[str, Any]) -> None:
        """Run query `name`, which returns no rows."""

        async def work(connection: Connection) -> None:
            await connection.execute(Q[name], params)

        await self._run(work)

    # -- schedules (schedules.py) --------------------------------------------------------------

    async def schedules(self, names: Sequence[str] | None = None) -> list[ScheduleRecord]:
        """The stored schedules, by name; see Broker.schedules."""
        return await self._run(lambda c: schedules.select(c, names))

    async def put_schedules(self, entries: Sequence[ScheduleEntry], *, replace: bool) -> list[bool]:
        """Store schedules in one statement; see Broker.put_schedules."""
        now = self._now()
        return await self._run(lambda c: schedules.put(c, entries, replace=replace, now=now))

    async def remove_schedules(self, names: Sequence[str]) -> int:
        """Delete schedules, not their jobs; see Broker.remove_schedules."""
        return await self._run(lambda c: schedules.remove(c, names))

    async def pause_schedules(self, names: Sequence[str], *, paused: bool) -> int:
        """Pause or resume schedules; see Broker.pause_schedules."""
        now = self._now()
        return await self._run(lambda c: schedules.pause(c, names, paused=paused, now=now))

    async def fire(self, firing: Firing) -> bool:
        """Apply a firing that still holds its schedule's cursor, its jobs enqueued as
        enqueue_many stores them, in one transaction; see Broker.fire."""
        now = self._now()
        return await self._run(
            lambda c: schedules.fire(c, firing, now=now, enqueue=self._enqueue_keyed)
        )


def _first_of_each(specs: Sequence[JobSpec], pending: Sequence[int]) -> tuple[list[int], list[int]]:
    """Split `pending` (positions in `specs`, in order) into the specs one insert can decide
    and those that must wait: a spec waits if an earlier pending one has its id or its (task,
    key), since what it is a duplicate of depends on how that one is settled."""
    chosen: list[int] = []
    later: list[int] = []
    ids: set[JobId] = set()
    keys: set[Key] = set()
    for i in pending:
        spec = specs[i]
        key = _key(spec)
        if spec.id in ids or (key is not None and key in keys):
            later.append(i)
        else:
            chosen.append(i)
        ids.add(spec.id)
        if key is not None:
            keys.add(key)
    return chosen, later


def _key(spec: JobSpec) -> Key | None:
    return None if spec.idempotency_key is None else (spec.task, spec.idempotency_key)
