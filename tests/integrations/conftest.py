"""Fixtures of the framework integrations: an App on the memory broker that records when its
broker is opened and closed, as a framework's startup and shutdown should do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import errands
from errands.brokers.memory import MemoryBroker


class RecordingBroker(MemoryBroker):
    """A memory broker that notes each open and close, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    async def open(self) -> None:
        """Note the open."""
        self.events.append("open")
        await super().open()

    async def close(self) -> None:
        """Note the close."""
        self.events.append("close")
        await super().close()


@pytest.fixture
def broker() -> RecordingBroker:
    """The broker of `app`, to see when it was opened and closed."""
    return RecordingBroker()


@pytest.fixture
def app(broker: RecordingBroker) -> Iterator[errands.App]:
    """An App on `broker` with one task, `shop.send_receipt`."""
    shop = errands.App(broker=broker)

    @shop.task(name="shop.send_receipt")
    def send_receipt(order_id: int) -> str:
        return f"receipt for order {order_id} sent"

    yield shop
    shop.close()
