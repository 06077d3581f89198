"""Completer: turns finished attempts into finish() calls, many outcomes per round trip.

It owns the flush window and nothing else; leases are extended by worker/leases.py. An outcome
waiting here is still leased, so a crash means a re-run, never a loss.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from errands.brokers.contract import Broker
from errands.outcome import Outcome

log = logging.getLogger("errands.worker")
RETRY = 0.5  # seconds before a failed finish() is tried again


class Completer:
    """Buffers outcomes; flushes when `size` are waiting, after `window`, or when told."""

    def __init__(
        self,
        broker: Broker,
        *,
        window: timedelta,
        size: int,
        on_flushed: Callable[[Sequence[Outcome], Sequence[bool]], None],
    ) -> None:
        self._broker, self._window, self._size = broker, window.total_seconds(), size
        self._on_flushed = on_flushed
        self._pending: list[Outcome] = []
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._flushing: set[asyncio.Task[None]] = set()
        self.flushes = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def settled(self) -> bool:
        """True when no outcome is waiting or being sent."""
        return not self._pending and not self._flushing

    def add(self, outcome: Outcome, *, now: bool = False) -> None:
        """Queue one outcome; `now` flushes at once (the worker went idle)."""
        self._pending.append(outcome)
        if now or len(self._pending) == self._size:
            self._schedule_flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._window, self._schedule_flush)

    def _schedule_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def flush(self) -> None:
        """Send everything pending in one finish(); one flush at a time keeps order."""
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                applied = await self._broker.finish(batch)
            except Exception:
                # Not lost: the leases still stand; the batch is tried again shortly.
                log.exception("finish of %d outcomes failed; retrying in %ss", len(batch), RETRY)
                self._pending[:0] = batch
                if self._timer is None:
                    self._timer = asyncio.get_running_loop().call_later(RETRY, self._schedule_flush)
                return
            self.flushes += 1
            self._on_flushed(batch, applied)

    async def drain(self) -> None:
        """Flush until nothing is pending (shutdown)."""
        while self._pending or self._flushing:
            await self.flush()
            if self._flushing:
                await asyncio.gather(*self._flushing, return_exceptions=True)
