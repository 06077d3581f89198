"""Group commit: enqueues that arrive while a commit is on its way to the disk share the next
one, so concurrent producers pay one fsync per group instead of one each.

Each call still lands whole or not at all; order is kept (a call joins the group after every
call that came before it). It knows nothing of what an enqueue writes: that is writes.py's.
Two forms: tasks on one event loop (GroupCommit), and blocking callers in any threads
(ThreadGroupCommit), where the first caller to find no commit under way commits for everyone
waiting, in its own thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Sequence

from errands.brokers.contract import Enqueued
from errands.job import JobSpec

Write = Callable[[Sequence[JobSpec]], Awaitable[list[Enqueued]]]
BlockingWrite = Callable[[Sequence[JobSpec]], list[Enqueued]]


class GroupCommit:
    """Runs `write` for the specs of every call waiting, one transaction per group."""

    def __init__(self, write: Write) -> None:
        self._write = write
        self._waiting: list[tuple[Sequence[JobSpec], asyncio.Future[list[Enqueued]]]] = []
        self._leader: asyncio.Task[None] | None = None
        self.groups = 0  # transactions run, for benchmarks

    async def enqueue(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Store `specs` in the next group's transaction; returns their replies."""
        reply: asyncio.Future[list[Enqueued]] = asyncio.get_running_loop().create_future()
        self._waiting.append((specs, reply))
        if self._leader is None:
            self._leader = asyncio.get_running_loop().create_task(self._commit_groups())
        return await reply

    async def _commit_groups(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                await self._commit(group)
        finally:
            self._leader = None

    async def _commit(
        self, group: list[tuple[Sequence[JobSpec], asyncio.Future[list[Enqueued]]]]
    ) -> None:
        self.groups += 1
        try:
            replies = await self._write([spec for specs, _ in group for spec in specs])
        except Exception as error:
            if len(group) == 1:
                _settle(group[0][1], error=error)
                return
            # One call's failure (a batch too big for a capped file, say) must not fail the
            # calls that happened to share its group: each is tried on its own.
            for one in group:
                await self._commit([one])
            return
        for (_, reply), value in zip(group, _split([s for s, _ in group], replies), strict=True):
            _settle(reply, value=value)


def _split(calls: Sequence[Sequence[JobSpec]], replies: list[Enqueued]) -> list[list[Enqueued]]:
    """One group's replies cut back into one list per call."""
    out: list[list[Enqueued]] = []
    start = 0
    for specs in calls:
        out.append(replies[start : start + len(specs)])
        start += len(specs)
    return out


def _settle(
    reply: asyncio.Future[list[Enqueued]],
    *,
    value: list[Enqueued] | None = None,
    error: BaseException | None = None,
) -> None:
    if reply.done():  # the caller was cancelled; what was stored stays stored
        return
    if error is not None:
        reply.set_exception(error)
    else:
        assert value is not None
        reply.set_result(value)


class _Ticket:
    """One blocking call waiting in a ThreadGroupCommit: its specs, then its replies or error;
    `ready` is released when it is settled or made the leader."""

    __slots__ = ("error", "leads", "ready", "replies", "specs")

    def __init__(self, specs: Sequence[JobSpec]) -> None:
        self.specs = specs
        self.replies: list[Enqueued] | None = None
        self.error: BaseException | None = None
        self.leads = False
        self.ready = threading.Lock()
        self.ready.acquire()

    def outcome(self) -> list[Enqueued]:
        if self.error is not None:
            raise self.error
        assert self.replies is not None
        return self.replies


class ThreadGroupCommit:
    """Group commit for blocking callers: no thread hop for a lone producer, one transaction
    per group for concurrent ones.

    A caller that finds no commit under way leads: it commits every call waiting (its own
    first), then hands the lead to the first call that arrived meanwhile, which commits the
    next group in its thread. The others sleep until their group is settled.
    """

    def __init__(self, write: BlockingWrite) -> None:
        self._write = write
        self.groups = 0  # transactions run, for benchmarks
        self._start_afresh()

    def _start_afresh(self) -> None:
        # Also in a forked child: the parent's lock or lead may have been held by a thread
        # that does not exist here.
        self._pid = os.getpid()
        self._lock = threading.Lock()  # guards the fields below
        self._waiting: list[_Ticket] = []
        self._leading = False

    def enqueue(self, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Store `specs` in the next group's transaction; returns their replies."""
        if self._pid != os.getpid():
            self._start_afresh()
        ticket = _Ticket(specs)
        with self._lock:
            self._waiting.append(ticket)
            leads, self._leading = not self._leading, True
        if not leads:
            try:
                ticket.ready.acquire()
            except BaseException:  # interrupted: never leave the lead with nobody
                with self._lock:
                    if ticket in self._waiting:
                        self._waiting.remove(ticket)
                    if ticket.leads:
                        self._hand_over()
                raise
            if not ticket.leads:
                return ticket.outcome()
        try:
            with self._lock:
                group, self._waiting = self._waiting, []
            try:
                self._commit(group)
            except BaseException:  # the leader was interrupted: its transaction rolled back
                for other in group:
                    if other.replies is None and other.error is None:
                        other.error = RuntimeError("interrupted before the commit")
                raise
            finally:
                for other in group:
                    if other is not ticket:
                        other.ready.release()
        finally:
            with self._lock:
                self._hand_over()
        return ticket.outcome()

    def _hand_over(self) -> None:
        """Under the lock: the first waiting call leads next, or nobody leads."""
        if self._waiting:
            self._waiting[0].leads = True
            self._waiting[0].ready.release()
        else:
            self._leading = False

    def _commit(self, group: list[_Ticket]) -> None:
        self.groups += 1
        try:
            replies = self._write([spec for ticket in group for spec in ticket.specs])
        except Exception as error:
            if len(group) == 1:
                group[0].error = error
                return
            for ticket in group:  # as in GroupCommit: each call of a failed group on its own
                self._commit([ticket])
            return
        for ticket, value in zip(group, _split([t.specs for t in group], replies), strict=True):
            ticket.replies = value
