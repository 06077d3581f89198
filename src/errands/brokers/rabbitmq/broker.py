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
from errands.brokers.rabbitmq.claiming import collect, settle_unused
from errands.brokers.rabbitmq.delegated import StoreVerbs
from errands.brokers.rabbitmq.publish import dead_letter, move, publish
from errands.brokers.rabbitmq.tickets import NewTicket, for_specs, ms
from errands.brokers.rabbitmq.url import RabbitURL, parse_url
from errands.clock import Clock
from errands.errors import BrokerUnavailable
from errands.job import Job, JobId, JobSpec, JobState, Progress
from errands.lease import Lease
from errands.outcome import Crashed, Failed, Outcome, Released, Retrying, Snoozed

log = logging.getLogger(__name__)

#: A ticket delivered this long ago is let go: acked if its job runs (RabbitMQ closes a channel
#: that holds an unacked message past its consumer timeout, 30 minutes by default; the lease
#: guards the job), moved (published again, then acked) if no claim has used it yet.
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
        await publish(self.amqp, for_specs(specs, self.amqp.now_ms()))
        return await self.store.enqueue_many(specs)

    async def fire(self, firing: Firing) -> bool:
        """Publish a ticket for each spec the firing enqueues, then fire in the store."""
        await publish(self.amqp, for_specs(firing.specs, self.amqp.now_ms()))
        return await self.store.fire(firing)

    async def requeue(self, job_ids: Sequence[JobId]) -> list[Job]:
        """Publish a ticket for each failed or cancelled job, then requeue them in the store."""
        now_ms = self.amqp.now_ms()
        before = await self.store.get(job_ids)
        await publish(
            self.amqp,
            [
                NewTicket(job.queue, str(job.id), now_ms, now_ms)
                for job in before
                if job.state in (JobState.FAILED, JobState.CANCELLED)
            ],
        )
        return await self.store.requeue(job_ids)

    # -- claiming ---------------------------------------------------------------------------

    async def claim(self, options: ClaimOptions) -> list[Claimed]:
        """Take up to n due tickets of each queue (claiming.collect), then claim as many jobs
        from the store, plus the claimable ones whose tickets are not here."""
        if options.n <= 0:
            return []
        usable, ticketless, with_jobs = await collect(
            self.amqp, self.store, options.queues, options.n
        )
        tickets = [ticket for queue in options.queues for ticket in usable[queue]]
        ask = min(options.n, len(tickets) + ticketless)
        if not ask:
            return []
        queues = [q for q in options.queues if usable[q] or (ticketless and q in with_jobs)]
        try:
            claimed = await self.store.claim(
                ClaimOptions(queues, ask, options.lease, options.worker_id)
            )
        except BaseException:
            await self.amqp.nack(tickets)
            raise
        for one in claimed:
            pool = usable.get(one.job.queue)
            if pool:
                self.amqp.held.running[str(one.job.id)] = pool.pop(0)
        unused = [ticket for queue in options.queues for ticket in usable[queue]]
        if unused:
            with contextlib.suppress(BrokerUnavailable):
                await settle_unused(self.amqp, self.store, unused, exhausted=len(claimed) < ask)
        return claimed

    # -- finishing --------------------------------------------------------------------------

    async def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Publish a ticket for each job the outcome makes claimable again, then finish in the
        store, then dead-letter the failed ones and ack the tickets the jobs held.

        Tickets go first, as on enqueue: a worker the store wakes for a released or retried job
        finds its ticket already queued (a ticket whose outcome the store then refuses is an
        orphan, dropped later). When the tickets cannot be published nothing is stored and
        BrokerUnavailable is raised: the worker sends the outcomes again."""
        now = self.clock.now()
        now_ms = ms(now)
        again: list[tuple[str, int]] = []
        for outcome in outcomes:
            job_id = str(outcome.lease.job_id)
            match outcome:
                case Released():
                    again.append((job_id, now_ms))
                case Retrying(delay=delay) | Crashed(delay=delay) | Snoozed(delay=delay):
                    again.append((job_id, ms(now + delay)))
                case _:
                    pass
        failed = [o for o in outcomes if isinstance(o, Failed)]
        queues = await self._queues_of([job_id for job_id, _ in again], failed)
        await publish(
            self.amqp, [NewTicket(queues[job_id], job_id, due, now_ms) for job_id, due in again]
        )
        applied = await self.store.finish(outcomes)
        held = self.amqp.held.pop_running(str(outcome.lease.job_id) for outcome in outcomes)
        dead = [
            o for o, done in zip(outcomes, applied, strict=True) if done and isinstance(o, Failed)
        ]
        try:
            if dead:
                await dead_letter(self.amqp, dead, queues)
        except Exception as error:  # the job is failed in the store; the copy is a courtesy
            log.warning("RabbitMQ broker: publishing dead letters failed: %s", error)
        await self.amqp.ack(held)
        return applied

    async def _queues_of(self, job_ids: Sequence[str], failed: Sequence[Failed]) -> dict[str, str]:
        """The queue of each job: from the ticket held for it, else from the store."""
        running = self.amqp.held.running
        queues = {
            job_id: ticket.queue
            for job_id, ticket in ((j, running.get(j)) for j in job_ids)
            if ticket is not None
        }
        wanted = [*job_ids, *(str(f.lease.job_id) for f in failed)]
        missing = [JobId(job_id) for job_id in wanted if job_id not in queues]
        if missing:
            for job in await self.store.get(missing):
                queues[str(job.id)] = job.queue
        return queues

    # -- waiting and leases -----------------------------------------------------------------

    async def wait_ready(self, queues: Sequence[str], timeout: timedelta) -> None:
        """The store's wait (it knows every due time), cut short when a ticket held here
        comes due."""
        first = self.amqp.held.first_due_ms(queues)
        if first is not None:
            wait_ms = first - self.amqp.now_ms()
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
        """The store's extend; tickets delivered longer than ACK_RUNNING_AFTER ago are let go
        here, before RabbitMQ's consumer timeout closes the channel: acked when their job runs
        (the lease guards it), moved when no claim has used them yet."""
        extended = await self.store.extend(leases, lease, heartbeat=heartbeat, progress=progress)
        cutoff = self.clock.monotonic() - ACK_RUNNING_AFTER.total_seconds()
        running, idle = self.amqp.held.pop_since(cutoff)
        await self.amqp.ack(running)
        with contextlib.suppress(BrokerUnavailable):  # nacked: they come back to a claim
            await move(self.amqp, idle)
        return extended
