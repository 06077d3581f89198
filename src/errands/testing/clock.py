"""FakeClock: time that moves only when a test says so, for the App and its broker alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta


class FakeClock:
    """A clock that moves only when told; `sleep` returns once the clock has been advanced.

    An App given a FakeClock hands it to the broker it builds too (`drives_brokers`), so one
    clock drives leases, schedules and expiry in a test.
    """

    drives_brokers = True

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2030, 1, 1, tzinfo=UTC)
        self._mono = 1000.0
        self._moved = asyncio.Condition() if _has_loop() else None

    def now(self) -> datetime:
        """The fake instant."""
        return self._now

    def monotonic(self) -> float:
        """Fake monotonic seconds, moved together with `now`."""
        return self._mono

    def advance(self, delta: timedelta) -> None:
        """Move time forward by `delta`."""
        if delta < timedelta(0):
            raise ValueError(f"a clock only moves forward, got {delta}")
        self._now += delta
        self._mono += delta.total_seconds()

    def set(self, instant: datetime) -> None:
        """Jump to `instant` (not earlier than now)."""
        self.advance(instant - self._now)

    async def sleep(self, delay: timedelta) -> None:
        """Yield to the loop once: fake time passes only through `advance`."""
        await asyncio.sleep(0)


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
