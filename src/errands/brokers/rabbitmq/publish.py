"""Publishing on the confirm channel: tickets (straight to a main queue, or through a delay
bucket), tickets moved from one queue to another, and dead letters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Final

import aio_pika
from aio_pika.abc import AbstractChannel
from pamqp.commands import Basic

from errands.brokers.rabbitmq.amqp import Amqp
from errands.brokers.rabbitmq.tickets import HOLD_MS, JOB, QUEUE, NewTicket, Ticket
from errands.errors import BrokerUnavailable
from errands.outcome import Failed

#: Delay queue buckets: 250 ms x 2^k, k = 0..16 (the largest is about 4.5 hours).
BUCKETS_MS: Final = tuple(250 * 2**k for k in range(17))
#: Publishes of a ticket batch before a nack is an error (50, 100, 200 ms between them).
PUBLISH_TRIES: Final = 4


async def target(amqp: Amqp, channel: AbstractChannel, ticket: NewTicket, now_ms: int) -> str:
    """Where a ticket goes: its main queue, or under a real clock the largest delay bucket
    not longer than its wait when it is due in more than HOLD_MS."""
    await amqp.main_queue(channel, ticket.queue)  # a delay queue dead-letters into it
    wait = ticket.due_ms - now_ms
    if not amqp.real_clock or wait <= HOLD_MS:
        return amqp.main_name(ticket.queue)
    bucket = max(b for b in BUCKETS_MS if b <= wait)
    return await amqp.delay_queue(channel, ticket.queue, bucket)


async def publish(amqp: Amqp, tickets: Sequence[NewTicket], *, bucket: bool = False) -> None:
    """Publish `tickets` and wait for every confirm; BrokerUnavailable if any fails.
    `bucket`: send each through the smallest delay bucket (a re-check later), real clock only.
    """
    if not tickets:
        return
    now_ms = amqp.now_ms()
    async with amqp.session("publish tickets") as channel:
        targets = []
        for ticket in tickets:
            if bucket and amqp.real_clock:
                await amqp.main_queue(channel, ticket.queue)
                targets.append(await amqp.delay_queue(channel, ticket.queue, BUCKETS_MS[0]))
            else:
                targets.append(await target(amqp, channel, ticket, now_ms))
        pending = list(zip(tickets, targets, strict=True))
        for attempt in range(PUBLISH_TRIES):
            pending = await publish_once(amqp, channel, pending)
            if not pending:
                return
            # A quorum queue electing its leader (just declared, or its node busy) nacks
            # a publish; a ticket sent twice is a harmless orphan, so try again.
            await asyncio.sleep(0.05 * 2**attempt)
        raise aio_pika.exceptions.DeliveryError(None, None)  # type: ignore[arg-type]


async def publish_once(
    amqp: Amqp, channel: AbstractChannel, pending: list[tuple[NewTicket, str]]
) -> list[tuple[NewTicket, str]]:
    """Publish each (ticket, target) and wait for the confirms; those not confirmed."""
    results = await asyncio.gather(
        *[
            channel.default_exchange.publish(
                ticket.message(), routing_key=target, timeout=amqp.timeout
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


async def move(amqp: Amqp, tickets: Sequence[Ticket], *, bucket: bool = False) -> None:
    """Publish a copy of each ticket (same job, due and age), then ack the old one; if the
    publish fails the old ones go back to their queue instead."""
    if not tickets:
        return
    try:
        await publish(amqp, [NewTicket.copy_of(t) for t in tickets], bucket=bucket)
    except BrokerUnavailable:
        await amqp.nack(tickets)
        raise
    await amqp.ack(tickets)


async def dead_letter(amqp: Amqp, failed: Sequence[Failed], queues: Mapping[str, str]) -> None:
    """Publish a copy of each failed job's outcome to the dead-letter exchange (a JSON body,
    and headers to filter on); DeliveryError if one is not confirmed."""
    async with amqp.session("publish dead letters") as channel:
        exchange = await amqp.dead_exchange(channel)
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
                timeout=amqp.timeout,
            )
            if not isinstance(result, Basic.Ack):
                raise aio_pika.exceptions.DeliveryError(None, result)  # type: ignore[arg-type]
