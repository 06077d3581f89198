"""Assertions on enqueued jobs: what an App's broker holds, with each job's arguments decoded.

It reads jobs through the broker's public listing, so it works on any broker; running them is
left to `app.run_until_idle()`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from errands import codec, envelope
from errands.app import App
from errands.brokers.contract import Broker, JobQuery, Page
from errands.handle import JobHandle
from errands.job import Job, JobState
from errands.task import Task

#: Jobs fetched per listing call while collecting every match.
PAGE = 500


@dataclass(frozen=True, slots=True)
class EnqueuedJob:
    """One stored job as a test sees it: the snapshot, its arguments decoded, and a handle
    (`handle.result()` once a worker ran it)."""

    job: Job
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    handle: JobHandle[Any]

    @property
    def task(self) -> str:
        """The task's name."""
        return self.job.task

    @property
    def queue(self) -> str:
        """The queue the job was stored in."""
        return self.job.queue

    @property
    def state(self) -> JobState:
        """The state at the time it was listed."""
        return self.job.state

    def describe(self) -> str:
        """`task(args, kwargs) on queue [state]`, for assertion messages."""
        given = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}({', '.join(given)}) on {self.queue} [{self.state}]"


class Jobs:
    """The jobs of one App, for assertions: `jobs.assert_enqueued(send_receipt, args=(42,))`.

    Every job the broker still holds counts as enqueued, whatever its state, so an assertion
    holds before and after `app.run_until_idle()`; pass `states=` to narrow it.
    """

    def __init__(self, app: App) -> None:
        self.app = app

    async def enqueued_async(
        self,
        task: Task[..., Any] | str | None = None,
        *,
        queue: str | None = None,
        states: Iterable[JobState] = (),
    ) -> list[EnqueuedJob]:
        """The jobs of `task` (a task or its name; None: every task) in `queue` and `states`
        (empty: any), oldest first."""
        query = JobQuery(queue=queue, states=tuple(states), task=_name(task), limit=PAGE)
        found: list[Job] = []
        while True:
            page = await self.app.call_broker(functools.partial(_list, query=query))
            found.extend(page.jobs)
            if page.next_cursor is None:
                break
            query = JobQuery(query.queue, query.states, query.task, PAGE, page.next_cursor)
        return [self._decoded(job) for job in reversed(found)]

    def enqueued(
        self,
        task: Task[..., Any] | str | None = None,
        *,
        queue: str | None = None,
        states: Iterable[JobState] = (),
    ) -> list[EnqueuedJob]:
        """Blocking twin of `enqueued_async`."""
        return self.app.portal.call(self.enqueued_async, task, queue=queue, states=states)

    async def assert_enqueued_async(
        self,
        task: Task[..., Any] | str,
        *,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        queue: str | None = None,
    ) -> EnqueuedJob:
        """The one job of `task` with these arguments (None: any) in `queue`; AssertionError
        listing what was enqueued when there is none, or more than one."""
        wanted = Wanted(_name(task) or "", args, kwargs, queue)
        every = await self.enqueued_async()
        matches = [job for job in every if wanted.matches(job)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            listed = "; ".join(job.describe() for job in every)
            raise AssertionError(
                f"no job {wanted} was enqueued; "
                + (f"enqueued: {listed}" if every else "the App has no job at all")
            )
        raise AssertionError(
            f"{len(matches)} jobs {wanted} were enqueued, expected one: {_listed(matches)} "
            "(narrow it with args=, kwargs= or queue=, or count them with enqueued())"
        )

    def assert_enqueued(
        self,
        task: Task[..., Any] | str,
        *,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        queue: str | None = None,
    ) -> EnqueuedJob:
        """Blocking twin of `assert_enqueued_async`."""
        return self.app.portal.call(
            self.assert_enqueued_async, task, args=args, kwargs=kwargs, queue=queue
        )

    async def assert_not_enqueued_async(
        self,
        task: Task[..., Any] | str,
        *,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        queue: str | None = None,
    ) -> None:
        """AssertionError naming the jobs of `task` with these arguments (None: any) in
        `queue`, if there are any."""
        wanted = Wanted(_name(task) or "", args, kwargs, queue)
        matches = [job for job in await self.enqueued_async(task) if wanted.matches(job)]
        if matches:
            raise AssertionError(f"expected no job {wanted}, found: {_listed(matches)}")

    def assert_not_enqueued(
        self,
        task: Task[..., Any] | str,
        *,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        queue: str | None = None,
    ) -> None:
        """Blocking twin of `assert_not_enqueued_async`."""
        self.app.portal.call(
            self.assert_not_enqueued_async, task, args=args, kwargs=kwargs, queue=queue
        )

    def _decoded(self, job: Job) -> EnqueuedJob:
        call = envelope.decode(job.payload)
        return EnqueuedJob(
            job=job,
            args=tuple(codec.from_wire(call.args)),
            kwargs=codec.from_wire(call.kwargs),
            handle=JobHandle(self.app, job.id, job=job),
        )


async def _list(broker: Broker, *, query: JobQuery) -> Page:
    return await broker.list_jobs(query)


def _name(task: Task[..., Any] | str | None) -> str | None:
    return task.name if isinstance(task, Task) else task


def _listed(jobs: Sequence[EnqueuedJob]) -> str:
    return "; ".join(job.describe() for job in jobs)


@dataclass(frozen=True, slots=True)
class Wanted:
    """What an assertion looks for: a task's jobs, with these arguments and in this queue
    where given (None matches anything)."""

    task: str
    args: Sequence[Any] | None
    kwargs: Mapping[str, Any] | None
    queue: str | None

    def matches(self, job: EnqueuedJob) -> bool:
        """True when `job` is one of those looked for."""
        return (
            job.task == self.task
            and (self.args is None or job.args == tuple(self.args))
            and (self.kwargs is None or dict(job.kwargs) == dict(self.kwargs))
            and (self.queue is None or job.queue == self.queue)
        )

    def __str__(self) -> str:
        parts = [f"of {self.task}"]
        if self.args is not None:
            parts.append(f"with args {tuple(self.args)!r}")
        if self.kwargs is not None:
            parts.append(f"with kwargs {dict(self.kwargs)!r}")
        if self.queue is not None:
            parts.append(f"in queue {self.queue!r}")
        return " ".join(parts)
