"""Waiters: who in this process waits for which queue to get jobs or which job to end, as
asyncio events, for brokers whose server pushes notices (Redis pub/sub, PostgreSQL NOTIFY).

A broker's listener subclasses Waiters and calls `deliver_ready` / `deliver_done` with the
names a notice carries, or `wake_all` when notices may have been missed (a reconnect).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Final

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
