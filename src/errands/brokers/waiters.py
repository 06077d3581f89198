"""Waiters: who in this process waits for which queue to get jobs or which job to end, as
asyncio events, for brokers whose server pushes notices (Redis pub/sub, PostgreSQL NOTIFY).

A broker's listener subclasses Waiters and calls `deliver_ready` / `deliver_done` with the
names a notice carries, or `wake_all` when notices may have been missed (a reconnect); the
broker's wait_ready and wait_done are `wait_ready` and `wait_done` below, given its reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from typing import Final

from errands.job import TERMINAL_STATES, Job, JobId
from errands.loops import raise_lost_cancel

EVERYONE: Final = "*"  # a name that wakes every waiter of its kind


class Waiters:
    """Events by queue (ready) and by job id (done); a waiter takes its event before it reads
    the broker, so no notice after the read goes unnoticed."""

    def __init__(self) -> None:
        self._ready: dict[str, set[asyncio.Event]] = {}
        self._done: dict[str, set[asyncio.Event]] = {}

    def watch_ready(self, queues: Iterable[str]) -> asyncio.Event:
        """An event set when a job of `queues` may have become claimable (or due sooner); take
        it before reading the broker and pass it to `unwatch_ready` afterwards."""
        return _watch(self._ready, queues)

    def unwatch_ready(self, queues: Iterable[str], event: asyncio.Event) -> None:
        """Stop delivering to `event`."""
        _unwatch(self._ready, queues, event)

    def watch(self, job_ids: Iterable[str]) -> asyncio.Event:
        """An event set when any of `job_ids` may have ended; take it before reading the broker
        and pass it to `unwatch` afterwards."""
        return _watch(self._done, job_ids)

    def unwatch(self, job_ids: Iterable[str], event: asyncio.Event) -> None:
        """Stop delivering to `event`."""
        _unwatch(self._done, job_ids, event)

    def wake_all(self) -> None:
        """Wake every waiter, to re-read the broker."""
        for watched in (self._ready, self._done):
            for events in watched.values():
                for event in events:
                    event.set()

    def deliver_ready(self, queues: Iterable[str]) -> None:
        """A notice that jobs of `queues` may be claimable (EVERYONE: of any queue)."""
        _deliver(self._ready, queues)

    def deliver_done(self, job_ids: Iterable[str]) -> None:
        """A notice that jobs `job_ids` may have ended (EVERYONE: any job)."""
        _deliver(self._done, job_ids)


def _watch(watched: dict[str, set[asyncio.Event]], names: Iterable[str]) -> asyncio.Event:
    event = asyncio.Event()
    for name in names:
        watched.setdefault(name, set()).add(event)
    return event


def _unwatch(
    watched: dict[str, set[asyncio.Event]], names: Iterable[str], event: asyncio.Event
) -> None:
    for name in names:
        events = watched.get(name)
        if events is not None:
            events.discard(event)
            if not events:
                del watched[name]


def _deliver(watched: dict[str, set[asyncio.Event]], names: Iterable[str]) -> None:
    names = list(names)
    if EVERYONE in names:
        for events in watched.values():
            for event in events:
                event.set()
        return
    for name in names:
        for event in watched.get(name, ()):
            event.set()


#: What a broker's readiness read returns: whether a job may be claimable now, and in how many
#: seconds the next scheduled one is due (None: none is).
Readiness = tuple[bool, float | None]


async def wait_ready(
    waiters: Waiters,
    queues: Sequence[str],
    timeout: timedelta,
    read: Callable[[], Awaitable[Readiness]],
) -> None:
    """Broker.wait_ready for a pushing broker: watch `queues` before reading, so no enqueue
    after the read goes unnoticed; then sleep until a notice, the next due job or the timeout,
    and return without reading again (the claim that follows finds out)."""
    signal = waiters.watch_ready(queues)
    try:
        ready, due_in = await read()
        raise_lost_cancel()
        left = timeout.total_seconds()
        if ready or left <= 0:
            return
        if due_in is not None:
            left = min(left, max(0.0, due_in))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(left):
                await signal.wait()
    finally:
        waiters.unwatch_ready(queues, signal)


async def wait_done(
    waiters: Waiters,
    job_ids: Sequence[JobId],
    timeout: timedelta,
    get: Callable[[Sequence[JobId]], Awaitable[list[Job]]],
    still_open: Callable[[], bool],
) -> list[Job]:
    """Broker.wait_done for a pushing broker: the jobs once all are terminal (or gone), or as
    they are at the timeout or when the broker closes; each read is preceded by a watch of the
    jobs still pending, so no end after the read goes unnoticed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout.total_seconds()
    pending = list(dict.fromkeys(job_ids))
    while True:
        signal = waiters.watch(pending)
        try:
            jobs = await get(job_ids)
            raise_lost_cancel()
            ended = {job.id for job in jobs if job.state in TERMINAL_STATES}
            stored = {job.id for job in jobs}
            left = deadline - loop.time()
            if left <= 0 or all(i in ended or i not in stored for i in pending):
                return jobs
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await signal.wait()
        finally:
            waiters.unwatch(pending, signal)
        if not still_open():
            return jobs
        pending = [i for i in pending if i not in ended and i in stored]
