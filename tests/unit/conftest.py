"""Unit fixtures: an App on the memory broker, closed after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import errands


@pytest.fixture
def app() -> Iterator[errands.App]:
    """A fresh App on its own memory broker; its portal thread stops after the test."""
    made = errands.App("memory://")
    yield made
    made.close()
