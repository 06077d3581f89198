"""Scheduling fixtures: a fake clock and an App on the memory broker that both the App and
its broker read, on the test's own loop so every broker call runs there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

import errands
from errands.testing import FakeClock

#: Where the fake clock starts: a Tuesday, on a whole hour.
START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    """A clock at START that moves only when the test advances it."""
    return FakeClock(START)


@pytest.fixture
async def clocked(clock: FakeClock) -> AsyncIterator[errands.App]:
    """An App on its own memory broker, driven by `clock`, whose portal is the test's loop."""
    app = errands.App("memory://", clock=clock)
    app.portal.adopt(asyncio.get_running_loop())
    yield app
    await app.close_async()
