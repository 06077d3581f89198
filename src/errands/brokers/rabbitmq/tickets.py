"""Tickets: the messages that say a job of a queue is claimable, and those a broker holds.

A ticket's headers name its job, its queue, when it is due and when it was first published
(epoch ms); tickets are fungible within a queue, so a claim only needs due ones, not the
ticket of the job the store hands out.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import aio_pika

from errands.job import JobSpec

JOB: Final = "x-errands-job"
DUE: Final = "x-errands-due"
PUBLISHED: Final = "x-errands-published"
QUEUE: Final = "x-errands-queue"

#: A ticket due within this many ms is held unacked in the process until due; a later one is
#: sent through a delay queue (under a real clock).
HOLD_MS: Final = 1000


@dataclass(slots=True)
class Window:
    """A queue's consumer on the channel: RabbitMQ delivers it no more than `prefetch`
    tickets unacked (those serving running jobs included)."""

    prefetch: int
    tag: str = ""
    outstanding: int = 0  # delivered to it and not acked or nacked yet

    @property
    def full(self) -> bool:
        """Whether RabbitMQ delivers it nothing more until a ticket is settled."""
        return self.outstanding >= self.prefetch

    @property
    def room(self) -> int:
        """Tickets RabbitMQ may still deliver to it."""
        return max(0, self.prefetch - self.outstanding)


@dataclass(eq=False, slots=True)
class Ticket:
    """One ticket delivered by RabbitMQ and not yet acked, on the channel of `generation`."""

    tag: int  # the delivery tag
    queue: str
    job_id: str
    due_ms: int
    published_ms: int
    generation: int
    got_at: float  # the clock's monotonic seconds when it was delivered
    window: Window | None  # its consumer's, or None when it came by basic.get


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
    """Tickets this broker object holds on its channel: delivered and not looked at yet
    (`arrived`, per queue, in order), not due yet (`future`), serving a running job, or
    malformed (to ack)."""

    arrived: dict[str, deque[Ticket]] = field(default_factory=dict)
    future: list[Ticket] = field(default_factory=list)
    running: dict[str, Ticket] = field(default_factory=dict)
    malformed: list[Ticket] = field(default_factory=list)

    def buffered(self, queues: Iterable[str]) -> int:
        """Tickets of `queues` delivered and not looked at yet."""
        return sum(len(self.arrived.get(queue, ())) for queue in queues)

    def take(
        self,
        usable: dict[str, list[Ticket]],
        n: int,
        now_ms: int,
        far: Callable[[Ticket], bool],
    ) -> list[Ticket]:
        """Fill each queue of `usable` up to n due tickets, held ones first, then arrived
        ones in order; an arrived ticket not due yet is held, or returned when `far` (to go
        through a delay queue)."""
        keep: list[Ticket] = []
        for ticket in self.future:
            pool = usable.get(ticket.queue)
            if pool is not None and ticket.due_ms <= now_ms and len(pool) < n:
                pool.append(ticket)
            else:
                keep.append(ticket)
        self.future = keep
        hops: list[Ticket] = []
        for queue, pool in usable.items():
            box = self.arrived.get(queue)
            while box and len(pool) < n:
                ticket = box.popleft()
                if ticket.due_ms <= now_ms:
                    pool.append(ticket)
                elif far(ticket):
                    hops.append(ticket)
                else:
                    self.future.append(ticket)
        return hops

    def first_due_ms(self, queues: Sequence[str]) -> int | None:
        """When the first held ticket of `queues` comes due, if any is held."""
        held = [t.due_ms for t in self.future if t.queue in queues]
        return min(held) if held else None

    def pop_running(self, job_ids: Iterable[str]) -> list[Ticket]:
        """The tickets held for these jobs, no longer held."""
        return [
            ticket for job_id in job_ids if (ticket := self.running.pop(job_id, None)) is not None
        ]

    def pop_since(self, cutoff: float) -> tuple[list[Ticket], list[Ticket]]:
        """The tickets delivered at `cutoff` (monotonic seconds) or before, no longer held:
        those of running jobs, and those no claim has used yet."""
        old = [job_id for job_id, t in self.running.items() if t.got_at <= cutoff]
        running = [self.running.pop(job_id) for job_id in old]
        idle = [t for t in self.future if t.got_at <= cutoff]
        self.future = [t for t in self.future if t.got_at > cutoff]
        for box in self.arrived.values():
            while box and box[0].got_at <= cutoff:
                idle.append(box.popleft())
        return running, idle


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


def read_ticket(
    headers: Mapping[str, Any], queue: str, tag: int, generation: int, at: float
) -> Ticket:
    """The ticket a delivery of `queue` carries; one with an empty job id when its headers are
    malformed."""
    job_id = header_str(headers, JOB)
    due = header_int(headers, DUE)
    if job_id is None or due is None:
        return Ticket(tag, queue, "", 0, 0, generation, at, None)
    published = header_int(headers, PUBLISHED) or due
    return Ticket(tag, queue, job_id, due, published, generation, at, None)
