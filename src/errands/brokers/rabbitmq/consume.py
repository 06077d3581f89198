"""Inbox: what one channel holds of RabbitMQ's tickets, got by consumers (`basic.consume`, a
prefetch window per queue) and, when a window is full, by `basic.get`; and how they are acked.

Deliveries land in `held.arrived` without a round trip per ticket; a claim takes them from
there. Acks of a batch go out together, in one socket write: one `multiple` ack for the
oldest tags when nothing older is still unacked on the channel, single acks for the rest.
An Inbox lives and dies with its channel: RabbitMQ requeues whatever it still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable
from typing import Final

from aiormq import Channel as RawChannel
from aiormq.abc import ChannelFrame, DeliveredMessage
from aiormq.exceptions import ChannelInvalidStateError
from pamqp.commands import Basic

from errands.brokers.rabbitmq.tickets import Held, Ticket, Window, read_ticket
from errands.clock import Clock

#: Seconds a `basic.get` may take: a live server answers at once, and a get left hanging on a
#: connection that just dropped would stall a worker's claims for the whole URL timeout.
GET_TIMEOUT: Final = 1.0


class Inbox:
    """The tickets of one channel (`generation`): consumers, deliveries, and acks."""

    def __init__(self, raw: RawChannel | None, generation: int, clock: Clock) -> None:
        self.raw = raw
        self.generation = generation
        self.clock = clock
        self.held = Held()
        self.windows: dict[str, Window] = {}
        self._unacked: set[int] = set()  # every delivery tag of the channel not yet settled
        self._getting = 0  # basic.gets in flight: their tags are not in _unacked yet
        self._arrived = asyncio.Event()

    # -- getting ----------------------------------------------------------------------------

    def consuming(self, queue: str) -> Window | None:
        """The window of `queue`'s consumer, while RabbitMQ has not cancelled it."""
        window = self.windows.get(queue)
        if window is None or self.raw is None or window.tag not in self.raw.consumers:
            return None
        return window

    async def consume(self, queue: str, name: str, prefetch: int, timeout: float) -> Window:
        """Start the consumer of `queue` (quorum queue `name`) with a prefetch window."""
        assert self.raw is not None
        window = Window(prefetch)

        async def deliver(message: DeliveredMessage) -> None:
            self._deliver(queue, window, message)

        await self.raw.basic_qos(prefetch_count=prefetch, timeout=timeout)
        ok = await self.raw.basic_consume(name, deliver, no_ack=False, timeout=timeout)
        window.tag = ok.consumer_tag or ""
        self.windows[queue] = window
        return window

    def _deliver(self, queue: str, window: Window, message: DeliveredMessage) -> None:
        """A delivery to a consumer: buffered, no round trip."""
        tag = message.delivery_tag
        if tag is None:
            return
        ticket = self._take_in(queue, tag, message)
        ticket.window = window
        window.outstanding += 1
        self._arrived.set()

    def _take_in(self, queue: str, tag: int, message: DeliveredMessage) -> Ticket:
        self._unacked.add(tag)
        headers = message.header.properties.headers or {}
        ticket = read_ticket(headers, queue, tag, self.generation, self.clock.monotonic())
        if ticket.job_id:
            self.held.arrived.setdefault(queue, deque()).append(ticket)
        else:
            self.held.malformed.append(ticket)
        return ticket

    async def get(self, queue: str, name: str, want: int, timeout: float) -> int:
        """`basic.get` up to `want` tickets of `queue` into `held.arrived` (for a consumer
        whose window is full); how many came."""
        assert self.raw is not None
        got = 0
        self._getting += 1
        try:
            while got < want:
                message = await self.raw.basic_get(
                    name, no_ack=False, timeout=min(timeout, GET_TIMEOUT)
                )
                tag = message.delivery_tag
                if not isinstance(message.delivery, Basic.GetOk) or tag is None:
                    break
                self._take_in(queue, tag, message)
                got += 1
        finally:
            self._getting -= 1
        return got

    async def wait_for(self, enough: Callable[[], bool], timeout: float) -> None:
        """Wait until `enough()` holds after a delivery, or `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not enough():
            left = deadline - loop.time()
            if left <= 0:
                return
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._arrived.wait()

    # -- settling ---------------------------------------------------------------------------

    def _settle(self, tickets: Iterable[Ticket]) -> list[int]:
        """The sorted tags of the tickets of this channel, no longer counted as unacked."""
        tags = []
        for ticket in tickets:
            if ticket.generation == self.generation and ticket.tag in self._unacked:
                self._unacked.discard(ticket.tag)
                if ticket.window is not None:
                    ticket.window.outstanding -= 1
                tags.append(ticket.tag)
        return sorted(tags)

    async def ack(self, tickets: Iterable[Ticket]) -> None:
        """Ack the tickets (their queue loses them), in as few frames as it can."""
        tags = self._settle(tickets)
        if not tags or self.raw is None:
            return
        # A multiple ack covers every unacked tag up to its own: only safe below the oldest
        # tag still held, and only when no basic.get is pending (its tag is not known yet).
        floor = min(self._unacked, default=tags[-1] + 1)
        below = 0 if self._getting else sum(1 for tag in tags if tag < floor)
        if below > 1:
            frames = [(tags[below - 1], True)] + [(tag, False) for tag in tags[below:]]
        else:
            frames = [(tag, False) for tag in tags]
        await self._send(
            [Basic.Ack(delivery_tag=tag, multiple=multiple) for tag, multiple in frames]
        )

    async def nack(self, tickets: Iterable[Ticket]) -> None:
        """Nack the tickets back to their queue."""
        tags = self._settle(tickets)
        if self.raw is None:
            return
        await self._send([Basic.Nack(delivery_tag=tag, requeue=True) for tag in tags])

    async def _send(self, frames: list[Basic.Ack] | list[Basic.Nack]) -> None:
        """Write the frames in one go and wait for them to be flushed to the socket (aiormq's
        basic_ack writes a frame, and makes a socket write, per call)."""
        if not frames or self.raw is None:
            return
        if self.raw.is_closed:
            raise ChannelInvalidStateError(f"{self.raw!r} closed")
        drained = self.raw.create_future()  # failed by aiormq if the connection closes
        await self.raw.connection.write_queue.put(
            ChannelFrame.marshall(self.raw.number, frames, drain_future=drained)
        )
        await drained
