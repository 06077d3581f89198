"""Tickets: the messages that say a job of a queue is claimable, and those a broker holds.

A ticket's headers name its job, its queue, when it is due and when it was first published
(epoch ms); tickets are fungible within a queue, so a claim only needs due ones, not the
ticket of the job the store hands out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from errands.job import JobSpec

JOB: Final = "x-errands-job"
DUE: Final = "x-errands-due"
PUBLISHED: Final = "x-errands-published"
QUEUE: Final = "x-errands-queue"

#: A ticket due within this many ms is held unacked in the process until due; a later one is
#: sent through a delay queue (under a real clock).
HOLD_MS: Final = 1000


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

    @classmethod
    def copy_of(cls, ticket: Ticket) -> NewTicket:
        """The same job, due time and age as `ticket` (to move it to another queue)."""
        return cls(ticket.queue, ticket.job_id, ticket.due_ms, ticket.published_ms)

    def message(self) -> aio_pika.Message:
        """The persistent message that carries this ticket."""
        return aio_pika.Message(
            self.job_id.encode(),
            headers={
                JOB: self.job_id,
                DUE: self.due_ms,
                PUBLISHED: self.published_ms,
                QUEUE: self.queue,
            },
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )


def for_specs(specs: Iterable[JobSpec], now_ms: int) -> list[NewTicket]:
    """A ticket for each spec, due when it is scheduled (now when it is not)."""
    return [
        NewTicket(
            spec.queue,
            str(spec.id),
            ms(spec.scheduled_at) if spec.scheduled_at is not None else now_ms,
            now_ms,
        )
        for spec in specs
    ]


@dataclass(slots=True)
class Held:
    """Tickets this broker object holds: not due yet, or serving a running job."""

    future: list[Ticket] = field(default_factory=list)
    running: dict[str, Ticket] = field(default_factory=dict)

    def take_due(
        self, queues: Sequence[str], n: int, now_ms: int, alive: Callable[[Ticket], bool]
    ) -> dict[str, list[Ticket]]:
        """Up to `n` due tickets of each of `queues`, taken out of `future` (which also loses
        the tickets of a channel that is gone: RabbitMQ has requeued them)."""
        usable: dict[str, list[Ticket]] = {queue: [] for queue in queues}
        for ticket in list(self.future):
            if not alive(ticket):
                self.future.remove(ticket)
            elif (
                ticket.queue in usable and ticket.due_ms <= now_ms and len(usable[ticket.queue]) < n
            ):
                self.future.remove(ticket)
                usable[ticket.queue].append(ticket)
        return usable

    def first_due_ms(self, queues: Sequence[str], alive: Callable[[Ticket], bool]) -> int | None:
        """When the first held ticket of `queues` comes due, if any is held."""
        held = [t.due_ms for t in self.future if t.queue in queues and alive(t)]
        return min(held) if held else None

    def pop_running(self, job_ids: Iterable[str]) -> list[Ticket]:
        """The tickets held for these jobs, no longer held."""
        return [
            ticket for job_id in job_ids if (ticket := self.running.pop(job_id, None)) is not None
        ]

    def pop_running_since(self, cutoff: float) -> list[Ticket]:
        """The tickets of jobs running since `cutoff` (monotonic seconds) or before, no longer
        held."""
        old = [job_id for job_id, t in self.running.items() if t.got_at <= cutoff]
        return [self.running.pop(job_id) for job_id in old]


def ms(instant: datetime) -> int:
    """`instant` in epoch milliseconds, as ticket headers carry it."""
    return int(instant.timestamp() * 1000)


def header_int(headers: Mapping[str, Any], name: str) -> int | None:
    """The header as an int, or None when it is missing or not a number."""
    value = headers.get(name)
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def header_str(headers: Mapping[str, Any], name: str) -> str | None:
    """The header as a str, or None when it is missing or not text."""
    value = headers.get(name)
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else None


def read_ticket(message: AbstractIncomingMessage, queue: str, generation: int) -> Ticket | None:
    """The ticket a message of `queue` carries, or None when its headers are malformed."""
    headers = message.headers or {}
    job_id = header_str(headers, JOB)
    due = header_int(headers, DUE)
    if job_id is None or due is None:
        return None
    published = header_int(headers, PUBLISHED) or due
    return Ticket(message, queue, job_id, due, published, generation)
