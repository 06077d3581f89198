"""The process pool: supervised children for CPU-bound work, each running child.py's loop.

Children start from a forkserver on Linux (spawn elsewhere), never by plain fork of a worker
that holds threads and connections. The parent keeps every lease: a child's death is a crash
of its job (signal or exit code), the child is replaced, and the job is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import psutil

from errands.brokers.contract import Claimed
from errands.job import AttemptError, ErrorKind
from errands.outcome import Outcome
from errands.policy import after_crash
from errands.worker.execution import Invocation, timed_out
from errands.worker.pools import child

log = logging.getLogger("errands.worker")


@dataclass(eq=False)
class Child:
    """One child process and the parent's end of its pipe."""

    process: BaseProcess
    conn: Connection
    jobs: int = 0
    rss: int = 0
    busy: bool = False
    killed_for: str | None = field(default=None)


class ProcessPool:
    """`size` children; each runs one job at a time."""

    name = "process"

    def __init__(
        self,
        app_ref: str,
        size: int,
        *,
        hard_timeout_margin: timedelta = timedelta(seconds=5),
        max_jobs_per_child: int | None = None,
        max_memory: int | None = None,
        max_memory_hard: int | None = None,
        watch_every: timedelta = timedelta(milliseconds=50),
    ) -> None:
        self.app_ref, self.size = app_ref, size
        self.hard_timeout_margin = hard_timeout_margin
        self.max_jobs_per_child, self.max_memory = max_jobs_per_child, max_memory
        self.max_memory_hard = max_memory_hard
        self._watch_every = watch_every.total_seconds()
        self._watcher: asyncio.Task[None] | None = None
        self._context = multiprocessing.get_context(
            "forkserver" if sys.platform.startswith("linux") else "spawn"
        )
        self._idle: asyncio.Queue[Child] = asyncio.Queue()
        self._children: set[Child] = set()
        self.replaced = 0

    async def start(self) -> None:
        """Start every child (in a thread: process start-up blocks)."""
        if self._children:
            return
        module = self.app_ref.partition(":")[0]
        if module != "__main__" and hasattr(self._context, "set_forkserver_preload"):
            self._context.set_forkserver_preload(["errands.worker.pools.child", module])
        children = await asyncio.gather(*(self._spawn() for _ in range(self.size)))
        for one in children:
            self._idle.put_nowait(one)
        if self.max_memory_hard is not None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch_memory())

    async def _watch_memory(self) -> None:
        # Sampling RSS is the only portable way to see a child's size; a job that allocates
        # faster than one interval can overshoot before it is killed.
        assert self.max_memory_hard is not None
        while True:
            await asyncio.sleep(self._watch_every)
            for one in list(self._children):
                if not one.busy or one.process.pid is None:
                    continue
                try:
                    rss = psutil.Process(one.process.pid).memory_info().rss
                except psutil.Error:
                    continue
                if rss > self.max_memory_hard:
                    one.killed_for, one.rss = "memory", rss
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(one.process.pid, signal.SIGKILL)

    async def _spawn(self) -> Child:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(  # type: ignore[attr-defined]
            target=child.main,
            args=(child_end, self.app_ref, self.max_jobs_per_child),
            name="errands-child",
            daemon=True,
        )
        await asyncio.to_thread(process.start)
        child_end.close()
        one = Child(process, parent_end)
        self._children.add(one)
        return one

    async def run(self, claimed: Claimed, invocation: Invocation) -> Outcome:
        """Send the job to an idle child and await its Outcome, or turn its death into one."""
        one = await self._idle.get()
        limit = invocation.timeout.total_seconds() if invocation.timeout else None
        hard = limit + self.hard_timeout_margin.total_seconds() if limit else None
        one.busy = True
        try:
            one.conn.send(claimed)
            async with asyncio.timeout(hard):
                outcome, one.rss = await _outcome(one.conn, invocation)
        except TimeoutError:
            await self._kill(one)
            return timed_out(
                claimed, invocation, f"time limit; killed at its {hard:g}s hard time limit"
            )
        except (EOFError, OSError):
            await self._replace(one)
            return after_crash(claimed, _death(one, claimed))
        except BaseException:
            await self._kill(one)  # cancelled: the job must stop now, so its child goes
            raise
        one.busy = False
        one.jobs += 1
        await self._after_job(one)
        return outcome

    async def _after_job(self, one: Child) -> None:
        spent = self.max_jobs_per_child is not None and one.jobs >= self.max_jobs_per_child
        bloated = self.max_memory is not None and one.rss > self.max_memory
        if spent or bloated:
            log.info("recycling child %s (jobs %d, rss %d)", one.process.pid, one.jobs, one.rss)
            await self._retire(one)
        else:
            self._idle.put_nowait(one)

    async def _retire(self, one: Child) -> None:
        with contextlib.suppress(OSError):
            one.conn.send(None)
        await asyncio.to_thread(one.process.join, 5)
        await self._kill(one)

    async def _kill(self, one: Child) -> None:
        if one.process.pid is not None and one.process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(one.process.pid, signal.SIGKILL)
        await self._replace(one)

    async def _replace(self, one: Child) -> None:
        await asyncio.to_thread(one.process.join, 5)
        one.conn.close()
        self._children.discard(one)
        self.replaced += 1
        if not self._closing:
            self._idle.put_nowait(await self._spawn())

    _closing = False

    async def stop(self) -> None:
        """Kill every child; jobs they held were released by the worker."""
        self._closing = True
        if self._watcher is not None:
            self._watcher.cancel()
        for one in list(self._children):
            if one.process.pid is not None and one.process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(one.process.pid, signal.SIGKILL)
        for one in list(self._children):
            await asyncio.to_thread(one.process.join, 5)
            one.conn.close()
        self._children.clear()

    @property
    def pids(self) -> list[int]:
        """The children's process ids."""
        return [c.process.pid for c in self._children if c.process.pid is not None]


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def _receive(conn: Connection) -> Any:
    """Wait until `conn` is readable without a thread, then read one message."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    fd = conn.fileno()
    loop.add_reader(fd, _wake, ready)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
    return conn.recv()


async def _outcome(conn: Connection, invocation: Invocation) -> tuple[Outcome, int]:
    """The job's (outcome, rss), passing on the progress reports that come before it."""
    while True:
        message: Any = await _receive(conn)
        if message[0] != child.PROGRESS:
            return message  # type: ignore[no-any-return]
        if invocation.job.report is not None:
            invocation.job.report(message[1])


def _death(one: Child, claimed: Claimed) -> AttemptError:
    attempt = claimed.lease.attempt
    if one.killed_for == "memory":
        message = f"child killed: RSS {one.rss} bytes over the hard memory limit"
        return AttemptError(attempt, ErrorKind.MEMORY, "MemoryLimitExceeded", message)
    code = one.process.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        return AttemptError(
            claimed.lease.attempt, ErrorKind.SIGNAL, name, f"child killed by {name}"
        )
    return AttemptError(
        claimed.lease.attempt, ErrorKind.EXIT, "ChildExited", f"child exited with {code}"
    )
