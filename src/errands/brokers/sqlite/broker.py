"""SQLiteBroker: the Broker contract on one SQLite file, the default broker of errands.

It ties the pieces together: Database (threads, transactions, errors), the transaction bodies
in writes.py, leases.py, maintenance.py, schedules.py and reads.py, and Wakeup for notices
between processes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, TypedDict
from urllib.parse import parse_qs, unquote, urlsplit

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
from errands.brokers.sqlite import leases, limits, maintenance, reads, schedules, writes
from errands.brokers.sqlite import topology as stored_topology
from errands.brokers.sqlite.database import Database
from errands.brokers.sqlite.grouping import GroupCommit, ThreadGroupCommit
from errands.brokers.sqlite.rows import claimed_from_rows, jobs_from_rows
from errands.brokers.sqlite.wakeup import DONE, READY, Wakeup
from errands.brokers.values import at_ms, ms_at
from errands.clock import Clock, SystemClock, to_ms
from errands.job import TERMINAL_STATES, CancelReason, Job, JobId, JobSpec, JobState, Progress
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

WORKER_TTL: Final = timedelta(seconds=60)
DEFAULT_BUSY_TIMEOUT: Final = timedelta(seconds=30)
#: Outcomes that end a job and that bring it back (to wake result waiters and idle workers).
_ENDING: Final = (Completed, Failed, Cancelled)
_AGAIN: Final = (Released, Retrying, Snoozed, Crashed)


class SQLiteBroker:
    """Jobs in one SQLite file shared by every process on the host (never over NFS).

    Durability: WAL with `synchronous=FULL` by default, so a write that returned survives a
    power cut; `synchronous="NORMAL"` trades the last commits before a power cut (not a process
    crash) for speed. A lock held by another process past `busy_timeout` raises
    BrokerUnavailable, a full disk or `max_page_count` BrokerFull; either way the write left
    nothing behind. `max_page_count` caps the file's size in pages (4 KiB by default).
    Workers in other processes are woken through wakeup.py.
    """

    capabilities = Capabilities(
        name="sqlite", notify=True, cross_process=True, transactional_enqueue=False
    )

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock | None = None,
        synchronous: str = "FULL",
        busy_timeout: timedelta = DEFAULT_BUSY_TIMEOUT,
        max_page_count: int | None = None,
    ) -> None:
        if str(path) == ":memory:" or str(path).startswith("file:"):
            # Each connection would get its own empty database; memory:// is the in-process one.
            raise ValueError(f"the SQLite broker needs a file path, not {str(path)!r}")
        self.path = Path(path)
        self._clock = clock or SystemClock()
        self._db = Database(
            self.path,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            max_page_count=max_page_count,
        )
        self._wakeup = Wakeup(self.path)
        self._group = GroupCommit(self._enqueue_now)
        self._thread_group = ThreadGroupCommit(self._enqueue_here)
        #: Queues whose rows this process has seen committed (rows are never deleted).
        self._queues: set[str] = set()
        self._opened = False
        self._loop: asyncio.AbstractEventLoop | None = None  # where it was opened

    @classmethod
    def from_url(cls, url: str, *, clock: Clock) -> SQLiteBroker:
        """`sqlite:///relative.db` or `sqlite:////absolute/path.db`, with optional
        `?synchronous=NORMAL`, `?busy_timeout_ms=5000` and `?max_page_count=N`."""
        path, options = parse_url(url)
        return cls(path, clock=clock, **options)

    @property
    def calls(self) -> int:
        """Transactions run so far (one per verb), for benchmarks."""
        return self._db.calls

    def _now_ms(self) -> int:
        return ms_at(self._clock.now())

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file if needed and apply pending migrations; idempotent."""
        if not self._opened:
            await self.migrate()
            self._opened, self._loop = True, asyncio.get_running_loop()

    async def close(self) -> None:
        """Close the connections and the wake-up socket; idempotent. Nothing stored is lost."""
        self._wakeup.close()
        if self._opened:
            self._opened = False
            await self._db.close()
            self._db = self._db.reopened()

    async def migrate(self) -> None:
        """Apply missing numbered migrations in one transaction; safe to race between
        processes."""
        await self._db.write(writes.migrate, self._now_ms())

    # -- producing -----------------------------------------------------------------------------

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Store every spec in one transaction (shared with the enqueues of other tasks of this
        process that arrive meanwhile: group commit); see Broker.enqueue_many."""
        if not specs:
            return []
        return await self._group.enqueue(specs)

    async def _enqueue_now(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        enqueued = await self._db.write(writes.enqueue, specs, self._now_ms(), self._queues)
        if self._stored_new(specs, enqueued):
            self._wakeup.notify(READY)
        return enqueued

    def _stored_new(self, specs: Sequence[JobSpec], enqueued: Sequence[Enqueued]) -> bool:
        """Remember the committed specs' queues; True if any spec made a new job."""
        self._queues.update(spec.queue for spec in specs)
        return not all(item.duplicate for item in enqueued)

    def enqueue_many_blocking(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """`enqueue_many` for a blocking caller of an opened broker, run in the caller's
        thread (group commit with the other threads enqueueing meanwhile): no hop to an event
        loop or the writer thread."""
        if not specs:
            return []
        return self._thread_group.enqueue(specs)

    def _enqueue_here(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        enqueued = self._db.write_here(writes.enqueue, specs, self._now_ms(), self._queues)
        if self._stored_new(specs, enqueued):
            self._wakeup.notify_threadsafe(READY)
        return enqueued

    # -- working -------------------------------------------------------------------------------

    async def claim(self, options: ClaimOptions) -> list[Claimed]:
        """Lease up to `options.n` jobs in one transaction; see Broker.claim."""
        if options.n <= 0:
            return []
        rows = await self._db.write_lightly(leases.claim, options, self._now_ms())
        return claimed_from_rows(rows)

    async def extend(
        self,
        leases_held: Sequence[Lease],
        lease: timedelta,
        *,
        heartbeat: WorkerInfo,
        progress: Mapping[JobId, Progress],
    ) -> Extended:
        """Push back every held lease in one transaction; see Broker.extend."""
        kept, cancels, expires_ms = await self._db.write_lightly(
            leases.extend,
            leases_held,
            lease_ms=to_ms(lease),
            heartbeat=heartbeat,
            progress=progress,
            now_ms=self._now_ms(),
        )
        expires_at = at_ms(expires_ms)
        return Extended([held.extended_to(expires_at) for held in kept], cancels)

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Apply every outcome whose lease holds, in one transaction; see Broker.finish."""
        if not outcomes:
            return []
        applied, released = await self._db.write(leases.finish, outcomes, self._now_ms())
        moved = [outcome for outcome, ok in zip(outcomes, applied, strict=True) if ok]
        ending = any(isinstance(outcome, _ENDING) for outcome in moved)
        again = released or any(isinstance(outcome, _AGAIN) for outcome in moved)
        self._wakeup.notify((DONE if ending else b"") + (READY if again else b""))
        return applied

    async def wait_ready(self, queues: Sequence[str], timeout: timedelta) -> None:
        """Return once a job of `queues` may be claimable, or at the timeout; a hint only.

        Sleeps until a READY notice, the next scheduled job's due time, or a periodic
        re-check, whichever comes first, then re-reads the database.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout.total_seconds()
        self._wakeup.listen()  # before the first read, so no commit after it goes unnoticed
        while self._opened:
            signal = self._wakeup.signal(READY)
            ready, next_due_ms = await self._db.read(limits.readiness, queues, self._now_ms())
            now_ms = self._now_ms()
            left = deadline - loop.time()
            if ready or left <= 0 or (next_due_ms is not None and next_due_ms <= now_ms):
                return
            if next_due_ms is not None:
                left = min(left, (next_due_ms - now_ms) / 1000)
            if await self._wakeup.wait(signal, left):
                return  # a commit made jobs claimable: claim now, without reading again

    async def wait_done(self, job_ids: Sequence[JobId], timeout: timedelta) -> list[Job]:
        """Return the jobs once all are terminal, or as they are at the timeout (or when the
        broker is closed meanwhile)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout.total_seconds()
        self._wakeup.listen()
        while True:
            signal = self._wakeup.signal(DONE)
            jobs = await self.get(job_ids)
            left = deadline - loop.time()
            if left <= 0 or all(job.state in TERMINAL_STATES for job in jobs):
                return jobs
            await self._wakeup.wait(signal, left)
            if not self._opened:
                return jobs

    def wait_done_blocking(self, job_ids: Sequence[JobId], timeout: timedelta) -> list[Job]:
        """`wait_done` for a blocking caller of an opened broker, in the caller's thread: it
        reads the jobs there and sleeps until a DONE notice, with no hop to an event loop or
        the reader thread (the loop the broker was opened on reads the wake-up socket)."""
        deadline = time.monotonic() + timeout.total_seconds()
        if not self._wakeup.listening and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result()
        while True:
            signal = self._wakeup.thread_signal(DONE)
            jobs = jobs_from_rows(self._db.read_here(reads.jobs_by_ids, job_ids))
            left = deadline - time.monotonic()
            if left <= 0 or all(job.state in TERMINAL_STATES for job in jobs):
                return jobs
            self._wakeup.wait_in_thread(signal, left)
            if not self._opened:
                return jobs

    async def _listen(self) -> None:
        self._wakeup.listen()

    # -- maintenance ---------------------------------------------------------------------------

    async def reclaim(
        self,
        *,
        limit: int,
        lease: timedelta,
        workers_gone: Sequence[str] = (),
    ) -> list[Claimed]:
        """Take over expired leases and those of gone workers; see Broker.reclaim."""
        rows = await self._db.write_lightly(
            leases.reclaim,
            limit,
            workers_gone,
            lease_ms=to_ms(lease),
            now_ms=self._now_ms(),
        )
        return claimed_from_rows(rows)

    async def promote(self, *, limit: int) -> int:
        """Due scheduled and retryable jobs become available; see Broker.promote."""
        moved = await self._db.write_lightly(maintenance.promote, limit, self._now_ms())
        if moved:
            self._wakeup.notify(READY)
        return moved

    async def prune(self, *, finished_before: datetime, limit: int) -> int:
        """Drop expired results and old terminal jobs; see Broker.prune."""
        return await self._db.write(maintenance.prune, finished_before, limit, self._now_ms())

    # -- inspecting ----------------------------------------------------------------------------

    async def get(self, job_ids: Sequence[JobId]) -> list[Job]:
        """Jobs by id, in the order asked; unknown ids left out."""
        return jobs_from_rows(await self._db.read(reads.jobs_by_ids, job_ids))

    async def list_jobs(self, query: JobQuery) -> Page:
        """A page of jobs, newest first, by keyset on id."""
        rows, more = await self._db.read(reads.page, query)
        jobs = jobs_from_rows(rows)
        return Page(jobs, jobs[-1].id if more and jobs else None)

    async def counts(self, queues: Sequence[str] | None = None) -> Counts:
        """Jobs per queue and state, the paused queues and each one's oldest due waiting job."""
        return await self._db.read(reads.counts, queues, self._now_ms())

    async def workers(self) -> list[WorkerInfo]:
        """Workers whose last heartbeat is within the last minute."""
        cutoff = self._clock.now() - WORKER_TTL
        return await self._db.read(reads.workers, ms_at(cutoff))

    # -- controlling ---------------------------------------------------------------------------

    async def cancel(self, job_ids: Sequence[JobId], *, reason: str = "requested") -> list[Job]:
        """Cancel waiting jobs now and request it of running ones; see Broker.cancel."""
        why = CancelReason(reason)  # an unknown reason is refused before anything is written
        ended, released = await self._db.write(writes.cancel, job_ids, str(why), self._now_ms())
        self._wakeup.notify((DONE if ended else b"") + (READY if released else b""))
        return await self.get(job_ids)

    async def requeue(self, job_ids: Sequence[JobId]) -> list[Job]:
        """Failed and cancelled jobs run again with fresh budgets; see Broker.requeue."""
        moved = await self._db.write(writes.requeue, job_ids, self._now_ms())
        if moved:
            self._wakeup.notify(READY)
        return await self.get(job_ids)

    async def purge(self, queue: str, states: Sequence[JobState]) -> int:
        """Delete the queue's jobs in `states`, never running ones; their dependents are
        settled as a cancel settles them."""
        deleted, released = await self._db.write(writes.purge, queue, states, self._now_ms())
        # A waiter on a deleted job, or on a dependent cancelled with it, stops waiting.
        self._wakeup.notify((DONE if deleted else b"") + (READY if released else b""))
        return deleted

    async def pause(self, queues: Sequence[str]) -> None:
        """Claims skip these queues until resumed."""
        await self._db.write(writes.pause, queues)

    async def resume(self, queues: Sequence[str]) -> None:
        """Claims take these queues again."""
        await self._db.write(writes.resume, queues)
        self._wakeup.notify(READY)

    # -- routing -------------------------------------------------------------------------------

    async def topology(self) -> Topology:
        """The stored exchanges and bindings; see Broker.topology."""
        return await self._db.read(stored_topology.select)

    async def declare(self, exchanges: Sequence[Exchange], bindings: Sequence[Binding]) -> None:
        """Store exchanges and bindings in one transaction; see Broker.declare."""
        await self._db.write(stored_topology.declare, exchanges, bindings)

    async def unbind(self, bindings: Sequence[Binding]) -> int:
        """Delete these bindings; see Broker.unbind."""
        return await self._db.write(stored_topology.unbind, bindings)

    # -- schedules -----------------------------------------------------------------------------

    async def schedules(self, names: Sequence[str] | None = None) -> list[ScheduleRecord]:
        """The stored schedules (all when None), by name; see Broker.schedules."""
        return await self._db.read(schedules.select, names)

    async def put_schedules(self, entries: Sequence[ScheduleEntry], *, replace: bool) -> list[bool]:
        """Store the entries in one transaction; see Broker.put_schedules."""
        return await self._db.write(schedules.put, entries, replace, self._now_ms())

    async def remove_schedules(self, names: Sequence[str]) -> int:
        """Delete these schedules, not their jobs; see Broker.remove_schedules."""
        return await self._db.write(schedules.remove, names)

    async def pause_schedules(self, names: Sequence[str], *, paused: bool) -> int:
        """Set the paused flag; see Broker.pause_schedules."""
        return await self._db.write(schedules.pause, names, paused, self._now_ms())

    async def fire(self, firing: Firing) -> bool:
        """Enqueue a firing's jobs and move its schedule's cursor in one transaction, if the
        cursor still holds; see Broker.fire."""
        enqueued = await self._db.write(schedules.fire, firing, self._now_ms())
        if enqueued is None:
            return False
        if not all(item.duplicate for item in enqueued):
            self._wakeup.notify(READY)
        return True

    @property
    def location(self) -> str:
        """The database file's absolute path: a relative one depends on the working directory,
        so logs and messages show this one."""
        return str(self.path.resolve())


class URLOptions(TypedDict, total=False):
    """The constructor options a `sqlite:` URL may carry in its query."""

    synchronous: str
    busy_timeout: timedelta
    max_page_count: int


def parse_url(url: str) -> tuple[Path, URLOptions]:
    """The file path and constructor options of a `sqlite:` URL.

    Three slashes then a relative path (`sqlite:///errands.db`), four for an absolute one
    (`sqlite:////var/lib/errands.db`), as in SQLAlchemy.
    """
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ValueError(f"not a sqlite URL: {url!r} (expected sqlite:///path.db)")
    if parts.netloc:
        raise ValueError(f"a sqlite URL names no host: {url!r} (use sqlite:///path.db)")
    raw = unquote(parts.path)
    path = raw[1:] if raw.startswith("/") else raw  # the slash after the empty host
    if not path:
        raise ValueError(f"no database file in {url!r} (expected sqlite:///path.db)")
    return Path(path), _options(url, parse_qs(parts.query, strict_parsing=bool(parts.query)))


def _options(url: str, query: dict[str, list[str]]) -> URLOptions:
    options: URLOptions = {}
    for name, values in query.items():
        value = values[-1]
        if name == "synchronous":
            options["synchronous"] = value.upper()
        elif name == "busy_timeout_ms" and value.isdigit():
            options["busy_timeout"] = timedelta(milliseconds=int(value))
        elif name == "max_page_count" and value.isdigit() and int(value) > 0:
            options["max_page_count"] = int(value)
        else:
            raise ValueError(
                f"unknown or bad option {name}={value!r} in {url!r} "
                "(known: synchronous=OFF|NORMAL|FULL|EXTRA, busy_timeout_ms=<int>, "
                "max_page_count=<int>)"
            )
    return options
