"""Group commit: enqueues that arrive while a commit is on its way to the disk share the next
one, so concurrent producers pay one fsync per group instead of one each.

Each call still lands whole or not at all; order is kept (a call joins the group after every
call that came before it). It knows nothing of what an enqueue writes: that is writes.py's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from errands.brokers.contract import Enqueued
from errands.job import JobSpec

Write = Callable[[Sequence[JobSpec]], Awaitable[list[Enqueued]]]


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
        start = 0
        for specs, reply in group:
            _settle(reply, value=replies[start : start + len(specs)])
            start += len(specs)


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
