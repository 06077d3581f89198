"""Amqp: one connection and confirm channel to RabbitMQ, the queues declared on it, and its
Inbox of tickets (consumers, deliveries, acks: consume.py).

A failed call drops the connection and the next one connects again; every ticket got on the
old channel is then requeued by RabbitMQ, so the tickets held here are forgotten with it (a
ticket's `generation` says which channel it came from), and so are its consumers: a claim
starts them again on the new channel.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Final

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractQueue,
)

from errands.brokers.rabbitmq.consume import Inbox
from errands.brokers.rabbitmq.tickets import Held, Ticket, Window, ms
from errands.brokers.rabbitmq.url import RabbitURL
from errands.clock import Clock, SystemClock
from errands.errors import BrokerUnavailable

DELIVERY_LIMIT: Final = 20
#: A queue's consumer may hold this many times the largest claim unacked (unless the URL sets
#: `prefetch`): the tickets of running jobs, of jobs whose outcomes wait to be stored (the
#: worker batches them), and as many again ready for the next claims.
PREFETCH_PER_CLAIM: Final = 3
#: Seconds a new consumer waits for the tickets its queue had ready when it started.
FILL_WAIT: Final = 0.25

#: The errors of a connection or channel gone wrong, raised as BrokerUnavailable.
ERRORS: Final = (
    aio_pika.exceptions.AMQPError,
    aio_pika.exceptions.ChannelInvalidStateError,
    OSError,
    TimeoutError,
    ConnectionError,
)


class Amqp:
    """The connection to RabbitMQ of one broker object, made (again) when a call needs it."""

    def __init__(self, url: RabbitURL, clock: Clock) -> None:
        self.url = url
        self.clock = clock
        self.prefix = url.prefix
        self.real_clock = isinstance(clock, SystemClock)
        self.timeout = url.timeout.total_seconds()
        self.claim_size = 1  # the largest claim so far, kept across reconnections
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._generation = 0
        self.inbox = Inbox(None, self._generation, clock)
        self._connecting = asyncio.Lock()
        self._queues: dict[str, AbstractQueue] = {}
        self._dead_declared = False

    @property
    def held(self) -> Held:
        """The tickets held on the current channel."""
        return self.inbox.held

    def now_ms(self) -> int:
        """The clock's now, in epoch milliseconds."""
        return ms(self.clock.now())

    # -- names ------------------------------------------------------------------------------

    def main_name(self, queue: str) -> str:
        """The quorum queue of an errands queue's tickets."""
        return f"{self.prefix}.{queue}"

    def delay_name(self, queue: str, bucket_ms: int) -> str:
        """The delay queue of `queue` whose tickets wait `bucket_ms` then move to the main one."""
        return f"{self.prefix}.delay.{queue}.{bucket_ms}"

    @property
    def dead_name(self) -> str:
        """The fanout exchange and the quorum queue of dead letters."""
        return f"{self.prefix}.dead"

    # -- connection -------------------------------------------------------------------------

    async def drop(self) -> None:
        """Close the connection (RabbitMQ requeues the tickets still held) and forget what was
        declared and held on it."""
        connection, self._connection, self._channel = self._connection, None, None
        self._queues.clear()
        self._dead_declared = False
        self.inbox = Inbox(None, self._generation, self.clock)
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    async def ready(self) -> AbstractChannel:
        """The open channel, connecting (again) first when there is none."""
        if self._usable():
            assert self._channel is not None
            return self._channel
        async with self._connecting:
            if self._usable():
                assert self._channel is not None
                return self._channel
            await self.drop()
            self._generation += 1
            try:
                connection = await aio_pika.connect(self.url.connect, timeout=self.timeout)
                try:
                    channel = await connection.channel(publisher_confirms=True)
                    raw = await channel.get_underlay_channel()
                    assert isinstance(raw, aiormq.Channel)  # the Inbox reads its consumers
                except BaseException:
                    await connection.close()
                    raise
            except ERRORS as error:
                raise BrokerUnavailable(
                    f"RabbitMQ at {self.url.location} unavailable: {error!r}"
                ) from error
            self._connection, self._channel = connection, channel
            self.inbox = Inbox(raw, self._generation, self.clock)
            return channel

    def _usable(self) -> bool:
        """Whether the channel and its connection are open (a dropped connection may leave
        its channel marked open until aiormq's close completes)."""
        channel, connection = self._channel, self._connection
        return (
            channel is not None
            and not channel.is_closed
            and connection is not None
            and not connection.is_closed
        )

    @contextlib.asynccontextmanager
    async def session(self, doing: str) -> AsyncIterator[AbstractChannel]:
        """The channel, with any AMQP or network error raised as BrokerUnavailable (the next
        call reconnects)."""
        channel = await self.ready()
        try:
            yield channel
        except ERRORS as error:
            if self._channel is channel:
                await self.drop()
            raise BrokerUnavailable(
                f"RabbitMQ at {self.url.location} failed to {doing}: {error!r}"
            ) from error

    # -- declarations -----------------------------------------------------------------------

    async def main_queue(
        self, channel: AbstractChannel, queue: str, *, fresh: bool = False
    ) -> AbstractQueue:
        """The main queue of `queue`, declared on first use (`fresh`: again, for its count)."""
        name = self.main_name(queue)
        declared = self._queues.get(name)
        if declared is None or fresh:
            declared = await channel.declare_queue(
                name,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-delivery-limit": DELIVERY_LIMIT,
                    "x-dead-letter-exchange": self.dead_name,
                },
                timeout=self.timeout,
            )
            self._queues[name] = declared
        return declared

    async def delay_queue(self, channel: AbstractChannel, queue: str, bucket_ms: int) -> str:
        """The name of the delay queue of `queue` for `bucket_ms`, declared on first use."""
        name = self.delay_name(queue, bucket_ms)
        if name not in self._queues:
            self._queues[name] = await channel.declare_queue(
                name,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-message-ttl": bucket_ms,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": self.main_name(queue),
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
                timeout=self.timeout,
            )
        return name

    async def dead_exchange(self, channel: AbstractChannel) -> AbstractExchange:
        """The dead-letter exchange, with its queue declared and bound on first use."""
        exchange = await channel.declare_exchange(
            self.dead_name, aio_pika.ExchangeType.FANOUT, durable=True, timeout=self.timeout
        )
        if not self._dead_declared:
            queue = await channel.declare_queue(
                self.dead_name,
                durable=True,
                arguments={"x-queue-type": "quorum"},
                timeout=self.timeout,
            )
            await queue.bind(exchange, routing_key="", timeout=self.timeout)
            self._dead_declared = True
        return exchange

    # -- tickets got ------------------------------------------------------------------------

    async def window(self, channel: AbstractChannel, queue: str) -> Window:
        """The prefetch window of `queue`'s consumer, started on first use (again after a
        reconnection, or when RabbitMQ cancelled it); a new one waits a moment for the tickets
        its queue had ready, so that the first claim sees them."""
        window = self.inbox.consuming(queue)
        if window is not None:
            return window
        ready = (await self.main_queue(channel, queue, fresh=True)).declaration_result
        prefetch = self.url.prefetch or PREFETCH_PER_CLAIM * self.claim_size
        window = await self.inbox.consume(queue, self.main_name(queue), prefetch, self.timeout)
        expected = min(ready.message_count or 0, prefetch)
        await self.inbox.wait_for(lambda: window.outstanding >= expected, FILL_WAIT)
        return window

    async def get(self, queue: str, want: int) -> int:
        """`basic.get` up to `want` tickets of `queue` (its consumer's window is full)."""
        return await self.inbox.get(queue, self.main_name(queue), want, self.timeout)

    def alive(self, ticket: Ticket) -> bool:
        """Whether `ticket` came on the channel still open (else RabbitMQ has requeued it)."""
        return ticket.generation == self._generation and self._channel is not None

    async def ack(self, tickets: Iterable[Ticket]) -> None:
        """Ack the tickets still alive (done with: their queue loses them)."""
        with contextlib.suppress(*ERRORS):
            await self.inbox.ack(t for t in tickets if self.alive(t))

    async def nack(self, tickets: Iterable[Ticket]) -> None:
        """Nack the tickets still alive, back to their queue."""
        with contextlib.suppress(*ERRORS):
            await self.inbox.nack(t for t in tickets if self.alive(t))
