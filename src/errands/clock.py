"""Clock: the one source of time for brokers, workers and schedulers, so tests can inject it."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Wall time for stored instants, monotonic time for in-process deadlines."""

    def now(self) -> datetime:
        """The current instant, aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    async def sleep(self, delay: timedelta) -> None:
        """Wait `delay` on this clock."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current instant, aware, in UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    async def sleep(self, delay: timedelta) -> None:
        """`asyncio.sleep` for `delay`."""
        await asyncio.sleep(max(0.0, delay.total_seconds()))


def to_ms(duration: timedelta) -> int:
    """A duration as integer milliseconds, the only unit used on the wire and in storage."""
    return round(duration.total_seconds() * 1000)


def from_ms(ms: int) -> timedelta:
    """Integer milliseconds back to a duration."""
    return timedelta(milliseconds=ms)
