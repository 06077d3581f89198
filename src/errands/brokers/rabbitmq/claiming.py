"""Taking tickets for a claim: from what the queues' consumers delivered (no round trip), by
`basic.get` when a consumer's window is full, after a short wait when the store has jobs
whose tickets are on their way; and what becomes of the tickets a claim did not use."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Final

from errands.brokers.contract import Broker
from errands.brokers.rabbitmq.amqp import Amqp
from errands.brokers.rabbitmq.publish import move
from errands.brokers.rabbitmq.tickets import HOLD_MS, Ticket
from errands.errors import BrokerUnavailable
from errands.job import JobState

#: Seconds a short claim waits for deliveries when the store says more jobs are claimable.
CLAIM_WAIT: Final = 0.1
#: Due jobs a claim without tickets promotes in the store.
PROMOTE_LIMIT: Final = 1000
#: An extra ticket (no job for it) younger than this is kept: its job may not be stored yet.
YOUNG_MS: Final = 5000


async def take(amqp: Amqp, queues: Sequence[str], n: int, usable: dict[str, list[Ticket]]) -> None:
    """Fill `usable` (one list per queue of `queues`) up to n due tickets per queue. Tickets
    due later are held (due within HOLD_MS, or any under a fake clock) or moved through a delay
    queue; malformed ones are acked (dropped). BrokerUnavailable loses every ticket of the
    channel (RabbitMQ requeues them)."""
    amqp.claim_size = max(amqp.claim_size, n)
    now_ms = amqp.now_ms()

    def far(ticket: Ticket) -> bool:
        return amqp.real_clock and ticket.due_ms - now_ms > HOLD_MS

    async with amqp.session("take tickets") as channel:
        windows = [(queue, await amqp.window(channel, queue)) for queue in queues]
        hops = amqp.held.take(usable, n, now_ms, far)
        for queue, window in windows:
            # A full window gets no delivery until a ticket is settled (held ones not due
            # yet, or a prefetch below the worker's concurrency): get the rest one by one.
            while len(usable[queue]) < n and window.full:
                if not await amqp.get(queue, n - len(usable[queue])):
                    break
                hops += amqp.held.take(usable, n, now_ms, far)
        malformed, amqp.held.malformed = amqp.held.malformed, []
    await amqp.ack(malformed)
    if hops:
        with contextlib.suppress(BrokerUnavailable):  # nacked: they come back to a claim
            await move(amqp, hops)


async def collect(
    amqp: Amqp, store: Broker, queues: Sequence[str], n: int
) -> tuple[dict[str, list[Ticket]], int, list[str]]:
    """Up to n due tickets per queue; then, when they are fewer than n and the store has
    more claimable jobs, how many of those to claim without a ticket, and their queues.

    A short claim asks the store how many jobs are claimable; when it has more, the claim
    waits up to CLAIM_WAIT for their tickets (a ticket is confirmed before its job is stored,
    but delivered when RabbitMQ gets to it). When tickets come it takes them and leaves the
    rest to the next claims; when none comes (or the windows are full), the missing tickets
    are elsewhere: in another consumer's window, or lost (a queue purged by hand, a ticket
    dead-lettered after DELIVERY_LIMIT deliveries). The store is the truth, so those jobs are
    claimed all the same, and their tickets become orphans."""
    usable: dict[str, list[Ticket]] = {queue: [] for queue in queues}
    await take(amqp, queues, n, usable)
    have = sum(len(pool) for pool in usable.values())
    if have >= n:
        return usable, 0, []
    if not have:
        await store.promote(limit=PROMOTE_LIMIT)  # a claim promotes due jobs first
    counts = await store.counts(list(queues))
    available = {
        queue: counts.by_queue.get(queue, {}).get(JobState.AVAILABLE, 0)
        for queue in queues
        if queue not in counts.paused
    }
    wanted = min(n, sum(available.values()))
    room = sum(w.room for queue in queues if (w := amqp.inbox.consuming(queue)) is not None)
    if wanted <= have or not room:
        return usable, max(0, wanted - have), [queue for queue, k in available.items() if k]
    expected = min(wanted - have, room)
    await amqp.inbox.wait_for(lambda: amqp.held.buffered(queues) >= expected, CLAIM_WAIT)
    if not amqp.held.buffered(queues):
        # Nothing came: the tickets are elsewhere (or lost), and the jobs wait for nobody.
        return usable, wanted - have, [queue for queue, k in available.items() if k]
    await take(amqp, queues, n, usable)  # tickets flow in: the next claims get the rest
    return usable, 0, []


async def settle_unused(
    amqp: Amqp, store: Broker, unused: list[Ticket], *, exhausted: bool
) -> None:
    """Tickets a claim took but did not use. While the store may still have jobs for them (the
    claim was limited by n) they are held for the next claim; when it had none they are
    extras: kept (re-published through the smallest delay bucket) if their queue is paused or
    they are young, else dropped."""
    if not exhausted:
        amqp.held.future.extend(unused)
        return
    paused = (await store.counts(sorted({t.queue for t in unused}))).paused
    now_ms = amqp.now_ms()
    keep: list[Ticket] = []
    drop: list[Ticket] = []
    for ticket in unused:
        young = now_ms - max(ticket.published_ms, ticket.due_ms) < YOUNG_MS
        (keep if ticket.queue in paused or young else drop).append(ticket)
    await amqp.ack(drop)
    await move(amqp, keep, bucket=True)
