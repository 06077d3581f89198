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

import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Final

from errands.brokers.contract import (
    Broker,
    Capabilities,
    Claimed,
    ClaimOptions,
    Enqueued,
    Extended,
    Firing,
    WorkerInfo,
)
from errands.brokers.rabbitmq.amqp import Amqp
from errands.brokers.rabbitmq.delegated import StoreVerbs
from errands.brokers.rabbitmq.publish import dead_letter, move, publish
from errands.brokers.rabbitmq.tickets import NewTicket, Ticket, for_specs, ms
from errands.brokers.rabbitmq.url import RabbitURL, parse_url
from errands.clock import Clock
from errands.errors import BrokerUnavailable
from errands.job import Job, JobId, JobSpec, JobState, Progress
from errands.lease import Lease
from errands.outcome import Crashed, Failed, Outcome, Released, Retrying, Snoozed

log = logging.getLogger(__name__)

#: An extra ticket (no job for it) younger than this is kept: its job may not be stored yet.
YOUNG_MS: Final = 5000
#: A running job's ticket is acked after this long (RabbitMQ closes a channel that holds an
#: unacked message past its consumer timeout, 30 minutes by default); the lease guards it.
ACK_RUNNING_AFTER: Final = timedelta(minutes=15)


class RabbitMQBroker(StoreVerbs):
    """The Broker protocol over a companion store broker, with RabbitMQ tickets for claims."""

    def __init__(self, url: RabbitURL, store: Broker, *, clock: Clock) -> None:
        self.url = url
        self.store = store
        self.clock = clock
        self.amqp = Amqp(url, clock)
        self.capabilities = Capabilities(
            name="rabbitmq",
            notify=True,
            cross_process=store.capabilities.cross_process,
            transactional_enqueue=False,
            priority_levels=store.capabilities.priority_levels,
            gaps=dict(store.capabilities.gaps),
        )
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

    def main_name(self, queue: str) -> str:
        """The quorum queue of an errands queue's tickets."""
        return self.amqp.main_name(queue)

    def delay_name(self, queue: str, bucket_ms: int) -> str:
        """The delay queue of `queue` whose tickets wait `bucket_ms` then move to the main one."""
        return self.amqp.delay_name(queue, bucket_ms)

    @property
    def dead_name(self) -> str:
        """The fanout exchange and the quorum queue of dead letters."""
        return self.amqp.dead_name

    async def open(self) -> None:
        """Open the store, then connect to RabbitMQ (BrokerUnavailable if it cannot)."""
        if not self._store_open:
            await self.store.open()
            self._store_open = True
        await self.amqp.ready()

    async def close(self) -> None:
        """Close the channel (RabbitMQ requeues the tickets still held), then the store."""
        await self.amqp.drop()
        if self._store_open:
            self._store_open = False
            await self.store.close()

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
                            no_ack=False, fail=False, timeout=min(self._timeout, GET_TIMEOUT)
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
