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
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

import psycopg

from errands.brokers import waiters
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
from errands.brokers.postgres import control, enqueue, maintenance, reads, schedules, transactional
from errands.brokers.postgres import leases as stored_leases
from errands.brokers.postgres import limits as stored_limits
from errands.brokers.postgres import topology as stored_topology
from errands.brokers.postgres.database import Database
from errands.brokers.postgres.notices import Notices
from errands.brokers.postgres.pool import Connection
from errands.brokers.postgres.sql import Q, Scope, fetch
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
T = TypeVar("T")
P = ParamSpec("P")


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
        self._scope = Scope(self._url, self._now)
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

    async def _call(
        self,
        verb: Callable[Concatenate[Connection, Scope, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`verb(connection, scope, *args, **kwargs)`: a statement of a verb module (enqueue.py,
        leases.py, ...) on a pooled connection, given what every statement needs."""
        return await self._run(lambda connection: verb(connection, self._scope, *args, **kwargs))

    async def _fetch(self, name: str, params: Mapping[str, Any]) -> tuple[list[Any], list[str]]:
        """Rows and column names of query `name`, in one autocommit transaction."""
        return await self._run(lambda connection: fetch(connection, name, params))

    async def _one(self, name: str, params: Mapping[str, Any]) -> Any:
        found, _ = await self._fetch(name, params)
        return found[0]

    async def _listening(self) -> Notices:
        """The wake-up listener, listening (the broker opened first if needed)."""
        if not self._db.opened:
            await self.open()
        if self._notices is None:
            raise BrokerError(f"the broker for {self.location} is closed")
        await self._notices.listen()
        return self._notices

    # -- producing -----------------------------------------------------------------------------

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Store every spec in one statement (a short transaction when the specs carry
        idempotency keys); see Broker.enqueue_many and enqueue.py."""
        if not specs:
            return []
        return await self._call(enqueue.many, specs)

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

    async def _enqueue_keyed(self, connection: Any, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Release the expired keys the specs name, then insert, on a connection inside its
        transaction (a firing's, or the caller's: transactional.py); see enqueue.py."""
        return await enqueue.keyed(connection, self._scope, specs)

    # -- working -------------------------------------------------------------------------------

    async def claim(self, options: ClaimOptions) -> list[Claimed]:
        """Lease up to `options.n` jobs in one statement; see Broker.claim and leases.py."""
        if options.n <= 0:
            return []
        return await self._call(stored_leases.claim, options, PROMOTE_ON_CLAIM)

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
        return await self._call(stored_leases.extend, leases, lease, heartbeat, progress)

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply every outcome whose lease holds, in one statement; see Broker.finish."""
        if not outcomes:
            return []
        return await self._call(stored_leases.finish, outcomes)

    async def wait_ready(self, queues: Sequence[str], timeout: timedelta) -> None:
        """Return once a job of `queues` may be claimable, or at the timeout; a hint only (see
        waiters.wait_ready)."""
        notices = await self._listening()

        async def read() -> Readiness:
            ready, due_in = await self._one(
                "readiness", {"queues": list(queues), "now": self._now()}
            )
            return await self._call(stored_limits.readiness, queues, bool(ready), due_in)

        await waiters.wait_ready(notices, queues, timeout, read)

    async def wait_done(self, job_ids: Sequence[JobId], timeout: timedelta) -> list[Job]:
        """Return the jobs once all are terminal, or as they are at the timeout (or when the
        broker is closed meanwhile)."""
        notices = await self._listening()
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
        return await self._call(maintenance.reclaim, limit, lease, workers_gone)

    async def promote(self, *, limit: int) -> int:
        """Due scheduled and retryable jobs become available; see Broker.promote. Only the
        maintenance leader of the schema promotes at a time; the others move nothing."""
        if limit <= 0:
            return 0
        return await self._call(maintenance.promote, limit)

    async def prune(self, *, finished_before: datetime, limit: int) -> int:
        """Drop expired results and old terminal jobs; see Broker.prune. Only the maintenance
        leader of the schema prunes at a time; the others delete nothing."""
        return await self._call(maintenance.prune, finished_before, limit)

    # -- inspecting ----------------------------------------------------------------------------

    async def get(self, job_ids: Sequence[JobId]) -> list[Job]:
        """Jobs by id, in the order asked; unknown ids left out."""
        if not job_ids:
            return []
        return await self._run(lambda c: reads.jobs(c, job_ids))

    async def list_jobs(self, query: JobQuery) -> Page:
        """A page of jobs, newest first, by keyset on id."""
        return await self._run(lambda c: reads.page(c, query))

    async def counts(self, queues: Sequence[str] | None = None) -> Counts:
        """Jobs per queue and state, and the paused queues; every known queue (or each asked)
        is listed, even if empty."""
        return await self._call(reads.counts, queues)

    async def workers(self) -> list[WorkerInfo]:
        """Workers whose last heartbeat is within the last minute."""
        return await self._call(reads.workers, WORKER_TTL)

    # -- controlling ---------------------------------------------------------------------------

    async def cancel(self, job_ids: Sequence[JobId], *, reason: str = "requested") -> list[Job]:
        """Cancel waiting jobs now and request it of running ones; see Broker.cancel."""
        why = CancelReason(reason)  # an unknown reason is refused before anything is written
        if job_ids:
            await self._call(control.cancel, job_ids, str(why))
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
        """Delete the queue's jobs in `states`, never running ones; their dependents are
        settled as a cancel settles them."""
        return await self._call(control.purge, queue, states)

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
        await self._run(lambda connection: connection.execute(Q[name], params))

    # -- routing (topology.py) -----------------------------------------------------------------

    async def topology(self) -> Topology:
        """The stored exchanges and bindings, sorted; see Broker.topology."""
        return await self._run(stored_topology.select)

    async def declare(self, exchanges: Sequence[Exchange], bindings: Sequence[Binding]) -> None:
        """Store exchanges and bindings in one statement; see Broker.declare."""
        await self._run(lambda c: stored_topology.declare(c, exchanges, bindings))

    async def unbind(self, bindings: Sequence[Binding]) -> int:
        """Delete these bindings in one statement; see Broker.unbind."""
        return await self._run(lambda c: stored_topology.unbind(c, bindings))

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
