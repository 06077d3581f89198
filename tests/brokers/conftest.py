"""Fixtures of the broker-specific tests: an opened SQLite broker on a fresh file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from errands.brokers.sqlite.broker import SQLiteBroker


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[SQLiteBroker]:
    """An opened broker on a fresh file, on the real clock (wake-ups are about real time)."""
    opened = SQLiteBroker(tmp_path / "errands.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
