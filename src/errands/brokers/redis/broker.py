"""RedisBroker: the Broker contract on Redis (or Redis Cluster), one Lua script per verb.

Every write is one script call, so it is atomic and one round trip whatever the batch size;
jobs move between states only inside the scripts, so no job is ever held only in a worker's
memory. Time is Redis's own (`TIME`, read inside each script), so every worker on every host
judges leases and due times by one clock; a test's injected clock is passed in instead.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

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
from errands.brokers.redis import records
from errands.brokers.redis.clients import connect
from errands.brokers.redis.durability import check_durability
from errands.brokers.redis.errors import closed_transport, translated
from errands.brokers.redis.keys import Keys
from errands.brokers.redis.notices import Notices
from errands.brokers.redis.schedules import fire_args, put_args, schedule_records
from errands.brokers.redis.scripts import Scripts
from errands.brokers.redis.topology import declare_args, stored_topology, unbind_args
from errands.brokers.redis.url import parse_url
from errands.brokers.values import at_ms, ms_at
from errands.brokers.waiters import Readiness
from errands.clock import Clock, SystemClock, to_ms
from errands.errors import BrokerUnavailable
from errands.job import CancelReason, Job, JobId, JobSpec, JobState, Progress
from errands.lease import Lease, new_token
from errands.outcome import Outcome

log = logging.getLogger(__name__)

SCHEMA: Final = 1  # the key layout's version (keys.py)
#: Seconds a call waits for a connection or a reply unless the URL says otherwise: without
#: it, a Redis behind a dead route (no reset, no reply) would hold a call for the kernel's
#: TCP timeout, many minutes, instead of raising BrokerUnavailable.
TIMEOUT: Final = 5.0
WORKER_TTL: Final = timedelta(seconds=60)


class RedisBroker:
    """Jobs in Redis, shared by every worker and producer that opens the same URL and prefix.

    Durability is Redis's: with AOF and `appendfsync always` a write that returned survives a
    crash of Redis; see docs/brokers/redis.md. A connection error or a Redis that is loading or
    read-only raises BrokerUnavailable; an out-of-memory refusal raises BrokerFull. Either way
    the script did not run, or ran whole.
    """

    capabilities = Capabilities(
        name="redis", notify=True, cross_process=True, transactional_enqueue=False
    )

    def __init__(self, url: str, *, clock: Clock | None = None) -> None:
        self._url = parse_url(url)
        self._clock = clock or SystemClock()
        self._server_time = isinstance(self._clock, SystemClock)
        self._keys = Keys(self._url.prefix)
        self._client: Any = None
        self._node: aioredis.Redis | None = None
        self._scripts: Scripts | None = None
        self._notices: Notices | None = None
        self._checked = False
        self.calls = 0  # script calls so far (one per verb), for benchmarks
        self._unanswered_claim: list[Any] | None = None

    @classmethod
    def from_url(cls, url: str, *, clock: Clock) -> RedisBroker:
        """`redis://[[user]:password@]host:port/db?prefix=NAME[&cluster=1]`; see url.py."""
        return cls(url, clock=clock)

    @property
    def location(self) -> str:
        """The server's address, database and key prefix, never the password."""
        return self._url.location

    @property
    def keys(self) -> Keys:
        """The names of this app's keys (for tools and tests)."""
        return self._keys

    def _now_ms(self) -> int | str:
        # The system clock means "now" at the server: every host then shares Redis's clock.
        return "" if self._server_time else ms_at(self._clock.now())

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, load the scripts and record the key layout's version; idempotent."""
        if self._scripts is not None:
            return
        self._client, self._node = await connect(self._url, self._keys, TIMEOUT)
        self._scripts = Scripts(self._client, self._keys)
        self._notices = Notices(self._node, self._keys)
        try:
            await self.migrate()
            if not self._checked:
                self._checked = True
                await check_durability(self._node, self.location)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop listening and disconnect; idempotent. Nothing stored is lost."""
        notices, self._notices = self._notices, None
        client, self._client = self._client, None
        node, self._node = self._node, None
        self._scripts = None
        if notices is not None:
            await notices.close()
        if node is not None and node is not client:
            with contextlib.suppress(RedisError, OSError):
                await node.aclose()
        if client is not None:
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    async def migrate(self) -> None:
        """Record the key layout's version; refuses a layout written by a newer errands."""
        await self._run("migrate", SCHEMA)

    # -- calling scripts -----------------------------------------------------------------------

    async def _run(self, name: str, *args: Any) -> Any:
        if self._scripts is None:
            await self.open()
        assert self._scripts is not None
        self.calls += 1
        async with translated(self.location):
            try:
                return await self._scripts.run(name, self._now_ms(), args)
            except RuntimeError as error:
                if not closed_transport(error):
                    raise
                # uvloop refuses the write on a connection that died while pooled, before a
                # byte is sent, and redis-py's retry does not know that error: try once more on
                # a fresh connection, as redis-py does on the standard loop.
                return await self._scripts.run(name, self._now_ms(), args)

    def _listener(self) -> Notices:
        if self._notices is None:
            raise BrokerUnavailable(f"the broker for {self.location} is closed")
        return self._notices

    # -- producing -----------------------------------------------------------------------------

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Store every spec in one script call; see Broker.enqueue_many."""
        if not specs:
            return []
        if any(spec.depends_on or spec.workflow_id for spec in specs):
            args = records.spec_args(specs, dependencies=True, limits=True)
            return records.enqueued(await self._run("enqueue_workflow", *args))
        if any(spec.limits for spec in specs):
            args = records.spec_args(specs, limits=True)
            return records.enqueued(await self._run("enqueue_limited", *args))
        return records.enqueued(await self._run("enqueue", *records.spec_args(specs)))

    # -- working -------------------------------------------------------------------------------

    async def claim(self, options: ClaimOptions) -> list[Claimed]:
        """Lease up to `options.n` jobs in one script call; see Broker.claim."""
        if options.n <= 0:
            return []
        queues = list(dict.fromkeys(options.queues))
        # A claim whose reply was lost is sent again, unchanged, before any new one: Redis
        # answers it with the jobs it took, if it ran (claim.lua).
        args = self._unanswered_claim or [
            options.n,
            to_ms(options.lease),
            options.worker_id,
            len(queues),
            *queues,
            new_token(),
        ]
        try:
            reply = await self._run("claim", *args)
        except BrokerUnavailable:
            self._unanswered_claim = args
            raise
        self._unanswered_claim = None
        return records.claimed(reply)

    async def extend(
        self,
        leases: Sequence[Lease],
        lease: timedelta,
        *,
        heartbeat: WorkerInfo,
        progress: Mapping[JobId, Progress],
    ) -> Extended:
        """Push back every held lease in one script call; see Broker.extend."""
        args = records.extend_args(leases, lease, heartbeat, progress)
        kept, cancels, expires_ms = await self._run("extend", *args)
        expires_at = at_ms(int(expires_ms))
        return Extended(
            [leases[position - 1].extended_to(expires_at) for position in kept],
            [job_id.decode() for job_id in cancels],
        )

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply every outcome whose lease holds, in one script call; see Broker.finish."""
        if not outcomes:
            return []
        reply = await self._run("finish", *records.outcome_args(outcomes))
        return [bool(applied) for applied in reply]

    async def wait_ready(self, queues: Sequence[str], timeout: timedelta) -> None:
        """Return once a job of `queues` may be claimable, or at the timeout; a hint only (see
        waiters.wait_ready)."""
        notices = self._listener()
        await notices.listen()

        async def read() -> Readiness:
            ready, next_due_ms, now_ms = await self._run("readiness", *queues)
            due_in = (int(next_due_ms) - int(now_ms)) / 1000 if next_due_ms else None
            return bool(ready), due_in

        await waiters.wait_ready(notices, queues, timeout, read)

    async def wait_done(self, job_ids: Sequence[JobId], timeout: timedelta) -> list[Job]:
        """Return the jobs once all are terminal, or as they are at the timeout (or when the
        broker is closed meanwhile)."""
        notices = self._listener()
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
        """Take over expired leases and those of gone workers; see Broker.reclaim."""
        if limit <= 0:
            return []
        gone = list(workers_gone)
        reply = await self._run("reclaim", limit, to_ms(lease), len(gone), *gone, new_token())
        return records.claimed(reply)

    async def promote(self, *, limit: int) -> int:
        """Due scheduled and retryable jobs become available; see Broker.promote."""
        return int(await self._run("promote", limit))

    async def prune(self, *, finished_before: datetime, limit: int) -> int:
        """Drop expired results and old terminal jobs; see Broker.prune."""
        return int(await self._run("prune", ms_at(finished_before), limit))

    # -- inspecting ----------------------------------------------------------------------------

    async def get(self, job_ids: Sequence[JobId]) -> list[Job]:
        """Jobs by id, in the order asked; unknown ids left out."""
        if not job_ids:
            return []
        return records.jobs(await self._run("get", *job_ids))

    async def list_jobs(self, query: JobQuery) -> Page:
        """A page of jobs, newest first, by keyset on id."""
        reply = await self._run(
            "list",
            query.queue or "",
            query.task or "",
            query.before_id or "",
            query.limit,
            query.workflow or "",
            query.idempotency_key or "",
            *(str(state) for state in query.states),
        )
        jobs = records.jobs(reply[1:])
        return Page(jobs, jobs[-1].id if reply[0] and jobs else None)

    async def counts(self, queues: Sequence[str] | None = None) -> Counts:
        """Jobs per queue and state, and the paused queues."""
        every = queues is None
        return records.counts(await self._run("counts", 1 if every else 0, *(queues or ())))

    async def workers(self) -> list[WorkerInfo]:
        """Workers whose last heartbeat is within the last minute."""
        return records.workers(await self._run("workers", to_ms(WORKER_TTL)))

    # -- controlling ---------------------------------------------------------------------------

    async def cancel(self, job_ids: Sequence[JobId], *, reason: str = "requested") -> list[Job]:
        """Cancel waiting jobs now and request it of running ones; see Broker.cancel."""
        why = CancelReason(reason)  # an unknown reason is refused before anything is written
        if job_ids:
            await self._run("cancel", str(why), *job_ids)
        return await self.get(job_ids)

    async def requeue(self, job_ids: Sequence[JobId]) -> list[Job]:
        """Failed and cancelled jobs run again with fresh budgets; see Broker.requeue."""
        if job_ids:
            await self._run("requeue", *job_ids)
        return await self.get(job_ids)

    async def purge(self, queue: str, states: Sequence[JobState]) -> int:
        """Delete the queue's jobs in `states`, never running ones; their dependents are
        settled as a cancel settles them."""
        return int(await self._run("purge", queue, *(str(state) for state in states)))

    async def pause(self, queues: Sequence[str]) -> None:
        """Claims skip these queues until resumed."""
        await self._run("pause", 1, *queues)

    async def resume(self, queues: Sequence[str]) -> None:
        """Claims take these queues again."""
        await self._run("pause", 0, *queues)

    # -- routing (topology.py encodes and decodes; the scripts store) -------------------------

    async def topology(self) -> Topology:
        """Every stored exchange and binding, sorted; see Broker.topology."""
        return stored_topology(await self._run("topology"))

    async def declare(self, exchanges: Sequence[Exchange], bindings: Sequence[Binding]) -> None:
        """Store exchanges and bindings in one script call; see Broker.declare."""
        if exchanges or bindings:
            await self._run("declare", *declare_args(exchanges, bindings))

    async def unbind(self, bindings: Sequence[Binding]) -> int:
        """Delete these bindings; returns how many existed."""
        return int(await self._run("unbind", *unbind_args(bindings))) if bindings else 0

    # -- schedules (schedules.py encodes and decodes; the scripts store and fence) -------------

    async def schedules(self, names: Sequence[str] | None = None) -> list[ScheduleRecord]:
        """The stored schedules (all when None), by name; see Broker.schedules."""
        if names is None:
            return schedule_records(await self._run("schedules", 1))
        if not names:
            return []
        reply = await self._run("schedules", 0, *sorted(set(names)))
        return schedule_records(reply)

    async def put_schedules(self, entries: Sequence[ScheduleEntry], *, replace: bool) -> list[bool]:
        """Store new and, with `replace`, changed schedules in one script call; see
        Broker.put_schedules."""
        if not entries:
            return []
        reply = await self._run("put_schedules", *put_args(entries, replace=replace))
        return [bool(written) for written in reply]

    async def remove_schedules(self, names: Sequence[str]) -> int:
        """Delete these schedules (not their jobs); returns how many existed."""
        return int(await self._run("remove_schedules", *names)) if names else 0

    async def pause_schedules(self, names: Sequence[str], *, paused: bool) -> int:
        """Pause or resume these schedules; see Broker.pause_schedules."""
        if not names:
            return 0
        return int(await self._run("pause_schedules", 1 if paused else 0, *names))

    async def fire(self, firing: Firing) -> bool:
        """Enqueue a firing's jobs and move its schedule's cursor in one script call, if the
        cursor still holds; see Broker.fire."""
        return bool(await self._run("fire", *fire_args(firing)))
