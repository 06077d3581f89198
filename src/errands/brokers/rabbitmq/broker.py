"""RabbitMQBroker: every job lives in a companion store broker; RabbitMQ carries *tickets*.

A ticket is a persistent message in the quorum queue `<prefix>.<queue>` that says "a job of
this errands queue is claimable (at `x-errands-due`)". Tickets are fungible within a queue: a
claim takes k due tickets, then asks the store for k jobs, so the store keeps priority, order,
leases, fencing and idempotency, and RabbitMQ decides who gets to ask. A ticket is published
(and confirmed) before its job is stored, so a stored claimable job always has one; a ticket
without a job (a duplicate, a cancelled job) is an orphan, dropped once it is old. See
docs/brokers/rabbitmq.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from pamqp.commands import Basic

from errands.brokers.contract import (
    Binding,
    Broker,
    Capabilities,
    Claimed,
    ClaimOptions,
    Counts,
    Enqueued,
    Exchange,
    Extended,
    Firing,
    JobQuery,
    Page,
    ScheduleEntry,
    ScheduleRecord,
    Topology,
    WorkerInfo,
)
from errands.brokers.rabbitmq.url import RabbitURL, parse_url
from errands.clock import Clock, SystemClock
from errands.errors import BrokerUnavailable
from errands.job import Job, JobId, JobSpec, JobState, Progress
from errands.lease import Lease
from errands.outcome import Crashed, Failed, Outcome, Released, Retrying, Snoozed

log = logging.getLogger(__name__)

JOB: Final = "x-errands-job"
DUE: Final = "x-errands-due"
PUBLISHED: Final = "x-errands-published"
QUEUE: Final = "x-errands-queue"

#: A ticket due within this many ms is held unacked in the process until due; a later one is
#: sent through a delay queue (under a real clock).
HOLD_MS: Final = 1000
#: Delay queue buckets: 250 ms x 2^k, k = 0..16 (the largest is about 4.5 hours).
BUCKETS_MS: Final = tuple(250 * 2**k for k in range(17))
#: An extra ticket (no job for it) younger than this is kept: its job may not be stored yet.
YOUNG_MS: Final = 5000
#: A running job's ticket is acked after this long (RabbitMQ closes a channel that holds an
#: unacked message past its consumer timeout, 30 minutes by default); the lease guards it.
ACK_RUNNING_AFTER: Final = timedelta(minutes=15)
DELIVERY_LIMIT: Final = 20
#: Publishes of a ticket batch before a nack is an error (50, 100, 200 ms between them).
PUBLISH_TRIES: Final = 4

_ERRORS: Final = (
    aio_pika.exceptions.AMQPError,
    aio_pika.exceptions.ChannelInvalidStateError,
    OSError,
    TimeoutError,
    ConnectionError,
)


@dataclass(eq=False, slots=True)
class Ticket:
    """One ticket got from RabbitMQ and not yet acked, on the channel of `generation`."""

    message: AbstractIncomingMessage
    queue: str
    job_id: str
    due_ms: int
    published_ms: int
    generation: int
    got_at: float = 0.0  # the clock's monotonic seconds when it started to serve a job


@dataclass(frozen=True, slots=True)
class NewTicket:
    """A ticket to publish."""

    queue: str
    job_id: str
    due_ms: int
    published_ms: int


@dataclass(slots=True)
class _Held:
    """Tickets this broker object holds: not due yet, or serving a running job."""

    future: list[Ticket] = field(default_factory=list)
    running: dict[str, Ticket] = field(default_factory=dict)


def _ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def _header_int(headers: Mapping[str, Any], name: str) -> int | None:
    value = headers.get(name)
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _header_str(headers: Mapping[str, Any], name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else None


class RabbitMQBroker:
    """The Broker protocol over a companion store broker, with RabbitMQ tickets for claims."""

    def __init__(self, url: RabbitURL, store: Broker, *, clock: Clock) -> None:
        self.url = url
        self.store = store
        self.clock = clock
        self.prefix = url.prefix
        self.real_clock = isinstance(clock, SystemClock)
        self.capabilities = Capabilities(
            name="rabbitmq",
            notify=True,
            cross_process=store.capabilities.cross_process,
            transactional_enqueue=False,
            priority_levels=store.capabilities.priority_levels,
            gaps=dict(store.capabilities.gaps),
        )
        self._timeout = url.timeout.total_seconds()
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._generation = 0
        self._connecting = asyncio.Lock()
        self._queues: dict[str, AbstractQueue] = {}
        self._dead_declared = False
        self._held = _Held()
        self._store_open = False

    @classmethod
    def from_url(cls, url: str, *, clock: Clock) -> RabbitMQBroker:
        """`amqp://user:password@host:port/vhost?store=<URL-encoded store URL>&prefix=NAME`."""
        from errands.brokers import from_url

        parsed = parse_url(url)
        return cls(parsed, from_url(parsed.store, clock=clock), clock=clock)

    @property
    def location(self) -> str:
        """The server, vhost and prefix (never the password), then the store's location."""
        return f"{self.url.location} + {self.store.location}"

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

    async def open(self) -> None:
        """Open the store, then connect to RabbitMQ (BrokerUnavailable if it cannot)."""
        if not self._store_open:
            await self.store.open()
            self._store_open = True
        await self._ready()

    async def close(self) -> None:
        """Close the channel (RabbitMQ requeues the tickets still held), then the store."""
        await self._drop_connection()
        if self._store_open:
            self._store_open = False
            await self.store.close()

    async def _drop_connection(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._queues.clear()
        self._dead_declared = False
        self._held = _Held()
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    async def _ready(self) -> AbstractChannel:
        """The open channel, connecting (again) first when there is none."""
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel
        async with self._connecting:
            channel = self._channel
            if channel is not None and not channel.is_closed:
                return channel
            await self._drop_connection()
            self._generation += 1
            try:
                connection = await aio_pika.connect(self.url.connect, timeout=self._timeout)
                try:
                    channel = await connection.channel(publisher_confirms=True)
                except BaseException:
                    await connection.close()
                    raise
            except _ERRORS as error:
                raise BrokerUnavailable(
                    f"RabbitMQ at {self.url.location} unavailable: {error!r}"
                ) from error
            self._connection, self._channel = connection, channel
            return channel

    @contextlib.asynccontextmanager
    async def _amqp(self, doing: str) -> AsyncIterator[AbstractChannel]:
        """The channel, with any AMQP or network error raised as BrokerUnavailable (the next
        call reconnects)."""
        channel = await self._ready()
        try:
            yield channel
        except _ERRORS as error:
            if self._channel is channel:
                await self._drop_connection()
            raise BrokerUnavailable(
                f"RabbitMQ at {self.url.location} failed to {doing}: {error!r}"
            ) from error

    async def _main_queue(self, channel: AbstractChannel, queue: str) -> AbstractQueue:
        name = self.main_name(queue)
        declared = self._queues.get(name)
        if declared is None:
            declared = await channel.declare_queue(
                name,
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-delivery-limit": DELIVERY_LIMIT,
                    "x-dead-letter-exchange": self.dead_name,
                },
                timeout=self._timeout,
            )
            self._queues[name] = declared
        return declared

    async def _delay_queue(self, channel: AbstractChannel, queue: str, bucket_ms: int) -> str:
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
                timeout=self._timeout,
            )
        return name

    async def _dead_exchange(self, channel: AbstractChannel) -> aio_pika.abc.AbstractExchange:
        exchange = await channel.declare_exchange(
            self.dead_name, aio_pika.ExchangeType.FANOUT, durable=True, timeout=self._timeout
        )
        if not self._dead_declared:
            queue = await channel.declare_queue(
                self.dead_name,
                durable=True,
                arguments={"x-queue-type": "quorum"},
                timeout=self._timeout,
            )
            await queue.bind(exchange, routing_key="", timeout=self._timeout)
            self._dead_declared = True
        return exchange

    # -- tickets ----------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return _ms(self.clock.now())

    async def _target(self, channel: AbstractChannel, ticket: NewTicket, now_ms: int) -> str:
        """Where a ticket goes: its main queue, or under a real clock the largest delay bucket
        not longer than its wait when it is due in more than HOLD_MS."""
        await self._main_queue(channel, ticket.queue)  # a delay queue dead-letters into it
        wait = ticket.due_ms - now_ms
        if not self.real_clock or wait <= HOLD_MS:
            return self.main_name(ticket.queue)
        bucket = max(b for b in BUCKETS_MS if b <= wait)
        return await self._delay_queue(channel, ticket.queue, bucket)

    async def _publish(self, tickets: Sequence[NewTicket], *, bucket: bool = False) -> None:
        """Publish `tickets` and wait for every confirm; BrokerUnavailable if any fails.
        `bucket`: send each through the smallest delay bucket (a re-check later), real clock only.
        """
        if not tickets:
            return
        now_ms = self._now_ms()
        async with self._amqp("publish tickets") as channel:
            targets = []
            for ticket in tickets:
                if bucket and self.real_clock:
                    await self._main_queue(channel, ticket.queue)
                    targets.append(await self._delay_queue(channel, ticket.queue, BUCKETS_MS[0]))
                else:
                    targets.append(await self._target(channel, ticket, now_ms))
            pending = list(zip(tickets, targets, strict=True))
            for attempt in range(PUBLISH_TRIES):
                pending = await self._publish_once(channel, pending)
                if not pending:
                    return
                # A quorum queue electing its leader (just declared, or its node busy) nacks
                # a publish; a ticket sent twice is a harmless orphan, so try again.
                await asyncio.sleep(0.05 * 2**attempt)
            raise aio_pika.exceptions.DeliveryError(None, None)  # type: ignore[arg-type]

    async def _publish_once(
        self, channel: AbstractChannel, pending: list[tuple[NewTicket, str]]
    ) -> list[tuple[NewTicket, str]]:
        """Publish each (ticket, target) and wait for the confirms; those not confirmed."""
        results = await asyncio.gather(
            *[
                channel.default_exchange.publish(
                    aio_pika.Message(
                        ticket.job_id.encode(),
                        headers={
                            JOB: ticket.job_id,
                            DUE: ticket.due_ms,
                            PUBLISHED: ticket.published_ms,
                            QUEUE: ticket.queue,
                        },
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=target,
                    timeout=self._timeout,
                )
                for ticket, target in pending
            ],
            return_exceptions=True,
        )
        failed = []
        for pair, result in zip(pending, results, strict=True):
            if isinstance(result, aio_pika.exceptions.DeliveryError):
                failed.append(pair)
            elif isinstance(result, BaseException):
                raise result
            elif not isinstance(result, Basic.Ack):
                failed.append(pair)
        return failed

    def _ticket(self, message: AbstractIncomingMessage, queue: str) -> Ticket | None:
        headers = message.headers or {}
        job_id = _header_str(headers, JOB)
        due = _header_int(headers, DUE)
        if job_id is None or due is None:
            return None
        published = _header_int(headers, PUBLISHED) or due
        return Ticket(message, queue, job_id, due, published, self._generation)

    def _alive(self, ticket: Ticket) -> bool:
        return ticket.generation == self._generation and self._channel is not None

    async def _ack(self, tickets: Iterable[Ticket]) -> None:
        for ticket in tickets:
            if self._alive(ticket):
                with contextlib.suppress(*_ERRORS):
                    await ticket.message.ack()

    async def _nack(self, tickets: Iterable[Ticket]) -> None:
        for ticket in tickets:
            if self._alive(ticket):
                with contextlib.suppress(*_ERRORS):
                    await ticket.message.nack(requeue=True)

    async def _move(self, tickets: Sequence[Ticket], *, bucket: bool = False) -> None:
        """Publish a copy of each ticket (same job, due and age), then ack the old one; if the
        publish fails the old ones go back to their queue instead."""
        if not tickets:
            return
        copies = [NewTicket(t.queue, t.job_id, t.due_ms, t.published_ms) for t in tickets]
        try:
            await self._publish(copies, bucket=bucket)
        except BrokerUnavailable:
            await self._nack(tickets)
            raise
        await self._ack(tickets)

    # -- producing --------------------------------------------------------------------------

    async def enqueue_many(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Publish one ticket per spec and wait for the confirms, then store the specs."""
        now_ms = self._now_ms()
        await self._publish(
            [
                NewTicket(
                    spec.queue,
                    str(spec.id),
                    _ms(spec.scheduled_at) if spec.scheduled_at is not None else now_ms,
                    now_ms,
                )
                for spec in specs
            ]
        )
        return await self.store.enqueue_many(specs)

    async def fire(self, firing: Firing) -> bool:
        """Publish a ticket for each spec the firing enqueues, then fire in the store."""
        now_ms = self._now_ms()
        await self._publish(
            [
                NewTicket(
                    spec.queue,
                    str(spec.id),
                    _ms(spec.scheduled_at) if spec.scheduled_at is not None else now_ms,
                    now_ms,
                )
                for spec in firing.specs
            ]
        )
        return await self.store.fire(firing)

    async def requeue(self, job_ids: Sequence[JobId]) -> list[Job]:
        """Publish a ticket for each failed or cancelled job, then requeue them in the store."""
        now_ms = self._now_ms()
        before = await self.store.get(job_ids)
        await self._publish(
            [
                NewTicket(job.queue, str(job.id), now_ms, now_ms)
                for job in before
                if job.state in (JobState.FAILED, JobState.CANCELLED)
            ]
        )
        return await self.store.requeue(job_ids)

    # -- claiming ---------------------------------------------------------------------------

    async def claim(self, options: ClaimOptions) -> list[Claimed]:
        """Take up to n due tickets of each queue, then claim as many jobs from the store."""
        if options.n <= 0:
            return []
        now_ms = self._now_ms()
        usable: dict[str, list[Ticket]] = {queue: [] for queue in options.queues}
        for ticket in list(self._held.future):
            if not self._alive(ticket):
                self._held.future.remove(ticket)
            elif (
                ticket.queue in usable
                and ticket.due_ms <= now_ms
                and len(usable[ticket.queue]) < options.n
            ):
                self._held.future.remove(ticket)
                usable[ticket.queue].append(ticket)
        hops: list[Ticket] = []
        malformed: list[AbstractIncomingMessage] = []
        try:
            async with self._amqp("get tickets") as channel:
                for queue in options.queues:
                    declared = await self._main_queue(channel, queue)
                    while len(usable[queue]) < options.n:
                        message = await declared.get(
                            no_ack=False, fail=False, timeout=self._timeout
                        )
                        if message is None:
                            break
                        got = self._ticket(message, queue)
                        if got is None:
                            malformed.append(message)
                        elif got.due_ms <= now_ms:
                            usable[queue].append(got)
                        elif self.real_clock and got.due_ms - now_ms > HOLD_MS:
                            hops.append(got)
                        else:
                            self._held.future.append(got)
                for message in malformed:
                    await message.ack()
        except BrokerUnavailable:
            # the channel is gone, and with it every ticket got so far (RabbitMQ requeues them)
            raise
        if hops:
            with contextlib.suppress(BrokerUnavailable):
                await self._move(hops)
        tickets = [ticket for queue in options.queues for ticket in usable[queue]]
        if not tickets:
            return []
        ask = min(options.n, len(tickets))
        try:
            claimed = await self.store.claim(
                ClaimOptions(
                    [queue for queue in options.queues if usable[queue]],
                    ask,
                    options.lease,
                    options.worker_id,
                )
            )
        except BaseException:
            await self._nack(tickets)
            raise
        started = self.clock.monotonic()
        for one in claimed:
            pool = usable.get(one.job.queue)
            if pool:
                ticket = pool.pop(0)
                ticket.got_at = started
                self._held.running[str(one.job.id)] = ticket
        unused = [ticket for queue in options.queues for ticket in usable[queue]]
        if unused:
            with contextlib.suppress(BrokerUnavailable):
                await self._settle_unused(unused, exhausted=len(claimed) < ask)
        return claimed

    async def _settle_unused(self, unused: list[Ticket], *, exhausted: bool) -> None:
        """Tickets a claim took but did not use. While the store may still have jobs for them
        (the claim was limited by n) they go back; when it had none they are extras: kept
        (re-published through the smallest delay bucket) if their queue is paused or they are
        young, else dropped."""
        if not exhausted:
            await self._move(unused)
            return
        paused = (await self.store.counts(sorted({t.queue for t in unused}))).paused
        now_ms = self._now_ms()
        keep: list[Ticket] = []
        drop: list[Ticket] = []
        for ticket in unused:
            young = now_ms - max(ticket.published_ms, ticket.due_ms) < YOUNG_MS
            (keep if ticket.queue in paused or young else drop).append(ticket)
        await self._ack(drop)
        await self._move(keep, bucket=True)

    # -- finishing --------------------------------------------------------------------------

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Publish a ticket for each job the outcome makes claimable again, then finish in the
        store, then dead-letter the failed ones and ack the tickets the jobs held.

        Tickets go first, as on enqueue: a worker the store wakes for a released or retried job
        finds its ticket already queued (a ticket whose outcome the store then refuses is an
        orphan, dropped later). When the tickets cannot be published nothing is stored and
        BrokerUnavailable is raised: the worker sends the outcomes again."""
        now = self.clock.now()
        now_ms = _ms(now)
        again: list[tuple[str, int]] = []
        for outcome in outcomes:
            job_id = str(outcome.lease.job_id)
            match outcome:
                case Released():
                    again.append((job_id, now_ms))
                case Retrying(delay=delay) | Crashed(delay=delay) | Snoozed(delay=delay):
                    again.append((job_id, _ms(now + delay)))
                case _:
                    pass
        failed = [o for o in outcomes if isinstance(o, Failed)]
        queues = await self._queues_of([job_id for job_id, _ in again], failed)
        await self._publish(
            [NewTicket(queues[job_id], job_id, due, now_ms) for job_id, due in again]
        )
        applied = await self.store.finish(outcomes)
        held = [
            ticket
            for outcome in outcomes
            if (ticket := self._held.running.pop(str(outcome.lease.job_id), None)) is not None
        ]
        dead = [
            o for o, done in zip(outcomes, applied, strict=True) if done and isinstance(o, Failed)
        ]
        try:
            if dead:
                await self._dead_letter(dead, queues)
        except Exception as error:  # the job is failed in the store; the copy is a courtesy
            log.warning("RabbitMQ broker: publishing dead letters failed: %s", error)
        await self._ack(held)
        return applied

    async def _queues_of(self, job_ids: Sequence[str], failed: Sequence[Failed]) -> dict[str, str]:
        queues = {
            job_id: ticket.queue
            for job_id, ticket in ((j, self._held.running.get(j)) for j in job_ids)
            if ticket is not None
        }
        wanted = [*job_ids, *(str(f.lease.job_id) for f in failed)]
        missing = [JobId(job_id) for job_id in wanted if job_id not in queues]
        if missing:
            for job in await self.store.get(missing):
                queues[str(job.id)] = job.queue
        return queues

    async def _dead_letter(self, failed: Sequence[Failed], queues: Mapping[str, str]) -> None:
        async with self._amqp("publish dead letters") as channel:
            exchange = await self._dead_exchange(channel)
            for outcome in failed:
                job_id = str(outcome.lease.job_id)
                message = outcome.error.message if outcome.error is not None else ""
                body = {
                    "job": job_id,
                    "queue": queues.get(job_id),
                    "attempt": outcome.lease.attempt,
                    "reason": str(outcome.reason),
                    "error_type": outcome.error.type if outcome.error is not None else None,
                    "error": message,
                }
                result = await exchange.publish(
                    aio_pika.Message(
                        json.dumps(body).encode(),
                        content_type="application/json",
                        headers={
                            JOB: job_id,
                            QUEUE: queues.get(job_id, ""),
                            "x-errands-reason": str(outcome.reason),
                            "x-errands-error": message[:4000],
                        },
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key="",
                    timeout=self._timeout,
                )
                if not isinstance(result, Basic.Ack):
                    raise aio_pika.exceptions.DeliveryError(None, result)  # type: ignore[arg-type]

    # -- waiting and leases -----------------------------------------------------------------

    async def wait_ready(self, queues: Sequence[str], timeout: timedelta) -> None:
        """The store's wait (it knows every due time), cut short when a ticket held here
        comes due."""
        held = [t.due_ms for t in self._held.future if t.queue in queues and self._alive(t)]
        if held:
            wait_ms = min(held) - self._now_ms()
            if wait_ms <= 0:
                return
            timeout = min(timeout, timedelta(milliseconds=wait_ms))
        await self.store.wait_ready(queues, timeout)

    async def extend(
        self,
        leases: Sequence[Lease],
        lease: timedelta,
        *,
        heartbeat: WorkerInfo,
        progress: Mapping[JobId, Progress],
    ) -> Extended:
        """The store's extend; tickets of jobs running longer than ACK_RUNNING_AFTER are acked
        here, before RabbitMQ's consumer timeout closes the channel (the lease guards them)."""
        extended = await self.store.extend(leases, lease, heartbeat=heartbeat, progress=progress)
        cutoff = self.clock.monotonic() - ACK_RUNNING_AFTER.total_seconds()
        old = [job_id for job_id, t in self._held.running.items() if t.got_at <= cutoff]
        if old:
            await self._ack([self._held.running.pop(job_id) for job_id in old])
        return extended

    # -- delegated to the store -------------------------------------------------------------

    async def migrate(self) -> None:
        """The store's migrations."""
        await self.store.migrate()

    async def wait_done(self, job_ids: Sequence[JobId], timeout: timedelta) -> list[Job]:
        """The store's wait_done."""
        return await self.store.wait_done(job_ids, timeout)

    async def reclaim(
        self, *, limit: int, lease: timedelta, workers_gone: Sequence[str] = ()
    ) -> list[Claimed]:
        """The store's reclaim (finish then publishes the tickets)."""
        return await self.store.reclaim(limit=limit, lease=lease, workers_gone=workers_gone)

    async def promote(self, *, limit: int) -> int:
        """The store's promote (the tickets are already there, due at the same time)."""
        return await self.store.promote(limit=limit)

    async def prune(self, *, finished_before: datetime, limit: int) -> int:
        """The store's prune."""
        return await self.store.prune(finished_before=finished_before, limit=limit)

    async def get(self, job_ids: Sequence[JobId]) -> list[Job]:
        """The store's get."""
        return await self.store.get(job_ids)

    async def list_jobs(self, query: JobQuery) -> Page:
        """The store's list_jobs."""
        return await self.store.list_jobs(query)

    async def counts(self, queues: Sequence[str] | None = None) -> Counts:
        """The store's counts."""
        return await self.store.counts(queues)

    async def workers(self) -> list[WorkerInfo]:
        """The store's workers."""
        return await self.store.workers()

    async def cancel(self, job_ids: Sequence[JobId], *, reason: str = "requested") -> list[Job]:
        """The store's cancel (a cancelled job's ticket is an orphan, dropped later)."""
        return await self.store.cancel(job_ids, reason=reason)

    async def purge(self, queue: str, states: Sequence[JobState]) -> int:
        """The store's purge."""
        return await self.store.purge(queue, states)

    async def topology(self) -> Topology:
        """The store's topology (routing is decided in errands, not by AMQP exchanges)."""
        return await self.store.topology()

    async def declare(self, exchanges: Sequence[Exchange], bindings: Sequence[Binding]) -> None:
        """The store's declare."""
        await self.store.declare(exchanges, bindings)

    async def unbind(self, bindings: Sequence[Binding]) -> int:
        """The store's unbind."""
        return await self.store.unbind(bindings)

    async def schedules(self, names: Sequence[str] | None = None) -> list[ScheduleRecord]:
        """The store's schedules."""
        return await self.store.schedules(names)

    async def put_schedules(self, entries: Sequence[ScheduleEntry], *, replace: bool) -> list[bool]:
        """The store's put_schedules."""
        return await self.store.put_schedules(entries, replace=replace)

    async def remove_schedules(self, names: Sequence[str]) -> int:
        """The store's remove_schedules."""
        return await self.store.remove_schedules(names)

    async def pause_schedules(self, names: Sequence[str], *, paused: bool) -> int:
        """The store's pause_schedules."""
        return await self.store.pause_schedules(names, paused=paused)

    async def pause(self, queues: Sequence[str]) -> None:
        """The store's pause (tickets of a paused queue circle through a delay bucket)."""
        await self.store.pause(queues)

    async def resume(self, queues: Sequence[str]) -> None:
        """The store's resume."""
        await self.store.resume(queues)
