"""Worker: one process that claims jobs for its free slots and runs them in its pools.

Start-up, the claim loop and graceful shutdown live here; leases are kept by leases.py,
outcomes sent by completer.py, expired leases rescued by maintenance.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from errands.brokers.contract import Broker, Claimed, ClaimOptions, WorkerInfo
from errands.current import request_stop
from errands.job import JobId, Progress
from errands.loops import raise_lost_cancel
from errands.outcome import Cancelled, Outcome, Released
from errands.policy import after_crash
from errands.scheduling.scheduler import Scheduler
from errands.task import PoolName, Task
from errands.worker.completer import Completer
from errands.worker.execution import Invocation, error_of, prepare, raised
from errands.worker.leases import LeaseKeeper
from errands.worker.liveness import LivenessLock
from errands.worker.maintenance import Maintenance, jitter
from errands.worker.middleware import Hooks, Middleware
from errands.worker.pools.base import Pool
from errands.worker.pools.coroutines import CoroutinePool
from errands.worker.pools.processes import ProcessPool
from errands.worker.pools.threads import ThreadPool
from errands.worker.prefetch import Prefetch
from errands.worker.queue_order import QueueOrder
from errands.workflow.inputs import supplied, takes_inputs

if TYPE_CHECKING:
    from errands.app import App

log = logging.getLogger("errands.worker")
#: Seconds between failed claims at most: a worker resumes within about a second of its broker
#: coming back, however long the outage was.
CLAIM_RETRY_CAP = 1.0
DEFAULT_CONCURRENCY: dict[PoolName, int] = {"async": 100, "thread": 16, "process": 0}


class Worker:
    """Claims as many jobs as it has free slots (plus the process pool's prefetch), in one
    call, and runs them."""

    def __init__(
        self,
        app: App,
        *,
        queues: Sequence[str] | Mapping[str, int] | None = None,
        strict: bool | None = None,
        concurrency: int | None = None,
        pool: PoolName | None = None,
        grace: timedelta | None = None,
        lease: timedelta | None = None,
        processes: int | None = None,
        max_jobs_per_child: int | None = None,
        max_memory: int | None = None,
        max_memory_hard: int | None = None,
        prefetch: int | None = None,
        worker_id: str | None = None,
        middleware: Sequence[Middleware] | None = None,
        scheduler: bool | None = None,
    ) -> None:
        self.app, self.settings = app, app.settings
        self._hooks = Hooks(app.middleware if middleware is None else middleware)
        #: How a claim walks the queues (queue_order.py); `queues` may map names to weights.
        self.queue_order = QueueOrder.of(queues or app.queues, strict=bool(strict))
        self.queues = self.queue_order.queues
        self.forced_pool = pool
        if concurrency is None and processes and self._pool_names() == {"process"}:
            concurrency = processes  # one slot per child; the prefetch comes on top
        self.concurrency = concurrency or self._default_concurrency()
        self.grace = grace if grace is not None else self.settings.grace
        self.lease = lease or self.settings.lease
        self.processes = processes or min(self.concurrency, os.cpu_count() or 1)
        self.max_jobs_per_child, self.max_memory = max_jobs_per_child, max_memory
        self.max_memory_hard = max_memory_hard
        #: Jobs held ahead for the process pool's children (see prefetch.py).
        self.prefetch = Prefetch(
            self.concurrency, self.settings.prefetch if prefetch is None else prefetch
        )
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self.started_at = datetime.now(UTC)
        self.ran = 0
        self.restart_requested = False
        self._running: dict[JobId, asyncio.Task[None]] = {}
        self._claims: dict[JobId, Claimed] = {}
        self._why_stopped: dict[JobId, str] = {}
        self._pools: dict[str, Pool] = {}
        self._stopping = asyncio.Event()
        self._forced = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._claim_failures = 0
        self._liveness = LivenessLock(self.id)
        #: A scheduler running beside the claim loop (`errands worker --scheduler`).
        self.scheduler = Scheduler(app) if scheduler else None

    def _pool_names(self) -> set[str]:
        """The pools this worker's jobs run in."""
        if self.forced_pool:
            return {self.forced_pool}
        return {t.defaults.pool for t in self.app.registry.values()}

    def _default_concurrency(self) -> int:
        pools = self._pool_names()
        if pools == {"process"}:
            return os.cpu_count() or 1
        if pools == {"async"}:
            return DEFAULT_CONCURRENCY["async"]
        return DEFAULT_CONCURRENCY["thread"]

    # -- control -------------------------------------------------------------------------------

    def request_stop(self, *, restart: bool = False) -> None:
        """Stop claiming and drain; a second call skips the grace. Safe from any thread."""
        loop = self._loop
        if loop is not None and not _on_loop(loop):
            loop.call_soon_threadsafe(self._stop, restart)
        else:
            self._stop(restart)

    def _stop(self, restart: bool) -> None:
        if self._stopping.is_set():
            self._forced.set()
        self._stopping.set()
        self._slot_free.set()  # wakes a claim loop waiting for a slot
        self.restart_requested = self.restart_requested or restart

    @property
    def capacity(self) -> int:
        """The most jobs this worker holds at once (its concurrency plus the prefetch)."""
        return self.prefetch.capacity

    @property
    def running(self) -> int:
        """Jobs running now."""
        return len(self._running)

    def pool(self, name: str) -> Pool | None:
        """The pool called `name`, if it was started."""
        return self._pools.get(name)

    # -- the run -------------------------------------------------------------------------------

    async def run(self, *, until_idle: bool = False) -> int:
        """Run until stopped (or, with `until_idle`, until nothing is claimable or running).

        The worker runs on the App's portal loop, where its broker lives: on the caller's loop
        if the portal has none yet (the `errands worker` case), else hopping to the portal's.
        """
        portal = self.app.portal
        if not portal.owns_running_loop():
            if portal.started:
                return await portal.run(self._run, until_idle)
            portal.adopt(asyncio.get_running_loop())
        return await self._run(until_idle)

    async def _run(self, until_idle: bool) -> int:
        loop = self._loop = asyncio.get_running_loop()
        broker = await self.app.open_async()
        await self.app.exchanges.sync_async()  # its subscriptions, before the first event
        self._keeper = LeaseKeeper(
            broker,
            self.lease,
            heartbeat=self._heartbeat,
            on_cancel=self._cancel,
            on_lost=self._lost,
        )
        self._completer = Completer(
            broker,
            window=self.settings.flush_window,
            size=self.settings.flush_size,
            on_flushed=self._flushed,
        )
        await self._start_pools()
        # The lock before the first heartbeat: a rescuer probes only workers with one.
        self._liveness.hold()
        try:
            await self._keeper.tick()
        except Exception:  # the broker may be busy at start; the lease loop tries again
            log.exception("first heartbeat failed")
        maintenance = Maintenance(broker, self.app.clock, self.settings, worker_id=self.id)
        helpers = [
            loop.create_task(self._keep_leases()),
            loop.create_task(maintenance.run(self._stopping)),
        ]
        if self.scheduler is not None:
            helpers.append(loop.create_task(self.scheduler.run()))
        log.info(
            "worker %s started: queues=%s concurrency=%d pools=%s broker=%s",
            self.id,
            ",".join(self.queues),
            self.concurrency,
            ",".join(self._pools),
            broker.location,
        )
        self._hooks.worker_started(self)
        try:
            await self._claim_loop(broker, until_idle)
        finally:
            await self._shutdown(helpers)
            self._hooks.worker_stopped(self)
        return self.ran

    async def _start_pools(self) -> None:
        wanted = self._pool_names()
        self._pools["async"] = CoroutinePool()
        self._pools["thread"] = ThreadPool(self.concurrency, on_too_stuck=self._too_stuck)
        if "process" in wanted:
            self._pools["process"] = ProcessPool(
                self.app.locate(),
                self.processes,
                hard_timeout_margin=self.settings.hard_timeout_margin,
                max_jobs_per_child=self.max_jobs_per_child,
                max_memory=self.max_memory,
                max_memory_hard=self.max_memory_hard,
            )
        for pool in self._pools.values():
            await pool.start()
        if "process" in self._pools:
            self.prefetch.start(self.processes)

    async def _claim_loop(self, broker: Broker, until_idle: bool) -> None:
        # With prefetch, claim once a batch of slots is free (or a pool slot is idle), not a
        # job at a time: one claim per batch, and a child never waits for one.
        while not self._stopping.is_set():
            headroom = self.prefetch.headroom()
            batch = max(1, (headroom + 1) // 2)
            held = len(self._running)
            free = self.concurrency + headroom - held
            if free <= 0 or (free < batch and held >= self.concurrency):
                self._slot_free.clear()
                await self._slot_free.wait()  # a stop sets it too: one event, no tasks
                continue
            flushes = self._completer.flushes
            claimed = await self._claim(broker, free)
            for one in claimed:
                self._start(one)
            raise_lost_cancel()  # a cancelled run() must end even if the claim lost the cancel
            if len(claimed) == free or self._claim_failures:
                continue
            if claimed:
                # Fewer than asked: the queues are empty now. Claiming again at once would only
                # hold the broker's writer (ahead of these jobs' finishes) to find nothing.
                await self._wait_for_work(broker)
                continue
            if until_idle and not self._running:
                if not self._completer.settled or self._completer.flushes != flushes:
                    # An outcome still on its way, or stored while the claim ran, may make a
                    # job claimable (a retry due now, a released workflow step): idle means
                    # nothing claimable once every outcome is stored.
                    await self._completer.drain()
                    continue
                return
            await self._wait_for_work(broker)

    async def _wait_for_work(self, broker: Broker) -> None:
        """Until a job may be claimable, a slot frees or the worker stops."""
        self._slot_free.clear()
        await self._first(
            broker.wait_ready(self.queues, self.settings.idle_wait),
            self._slot_free.wait(),
            self._stopping.wait(),
        )

    async def _claim(self, broker: Broker, n: int) -> list[Claimed]:
        """Claim up to `n` jobs; a broker error (locked, full, gone) is logged and waited out,
        never the end of the worker: it keeps its running jobs and tries again."""
        try:
            claimed: list[Claimed] = []
            for queues in self.queue_order.rounds():
                asked = ClaimOptions(queues, n - len(claimed), self.lease, self.id)
                claimed += await broker.claim(asked)
                if len(claimed) == n:
                    break
        except Exception as error:
            self._claim_failures += 1
            pause = min(CLAIM_RETRY_CAP, 0.1 * 2**self._claim_failures)
            log.error("claim failed (%s); trying again in %.1fs", error, pause)
            await self._first(asyncio.sleep(pause), self._stopping.wait())
            return []
        self._claim_failures = 0
        return claimed

    @staticmethod
    async def _first(*waits: Any) -> None:
        tasks = [asyncio.ensure_future(w) for w in waits]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _start(self, claimed: Claimed) -> None:
        job_id = claimed.job.id
        self._keeper.hold(claimed.lease)
        self._claims[job_id] = claimed
        self._running[job_id] = asyncio.get_running_loop().create_task(self._execute(claimed))

    async def _execute(self, claimed: Claimed) -> None:
        job_id = claimed.job.id
        began = time.monotonic()
        self._hooks.before(claimed)
        try:
            outcome = await self._outcome_of(claimed)
        except asyncio.CancelledError:
            why = self._why_stopped.pop(job_id, "shutdown")
            outcome = Cancelled(claimed.lease) if why == "cancel" else Released(claimed.lease)
        except Exception as error:  # a bug of errands' own: count it as a crash, never hang
            log.exception("running job %s failed inside errands", job_id)
            outcome = after_crash(claimed, error_of(claimed, error))
        finally:
            self._running.pop(job_id, None)
            self._claims.pop(job_id, None)
            self._slot_free.set()
        self.ran += 1
        self._hooks.after(claimed, outcome, time.monotonic() - began)
        self._keeper.finishing(outcome.lease.job_id)
        self._completer.add(outcome, now=not self._running)

    async def _outcome_of(self, claimed: Claimed) -> Outcome:
        if self.prefetch.capacity == self.concurrency:
            return await self._run_one(claimed)  # no prefetch: no gate to pass
        return await self.prefetch.run(claimed.job.id, lambda: self._run_one(claimed))

    async def _run_one(self, claimed: Claimed) -> Outcome:
        report = functools.partial(self._report, claimed.job.id)
        if takes_inputs(claimed):  # a workflow step: the results it waited for come first
            fed = await supplied(self.app.broker, claimed)
            if not isinstance(fed, Claimed):
                return fed
            claimed = fed
        prepared = prepare(claimed, self.app.registry, report)
        if not isinstance(prepared, Invocation):
            return prepared  # dead-lettered; the JobLog middleware says why
        pool = self._pool_for(prepared)
        try:
            return await pool.run(claimed, prepared)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as error:  # a pool's own failure still ends the attempt visibly
            log.exception("pool %s failed on job %s", pool.name, claimed.job.id)
            return raised(claimed, prepared, error)

    def _report(self, job_id: JobId, progress: Progress) -> None:
        """A task's progress report, from any thread: the keeper lives on the worker's loop."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._keeper.report, job_id, progress)

    def _pool_for(self, invocation: Invocation) -> Pool:
        return self._pools.get(self._pool_name(invocation.task)) or self._pools["thread"]

    def _pool_name(self, task: Task[..., Any]) -> str:
        name: str = self.forced_pool or task.defaults.pool
        if task.is_async and name == "thread":
            name = "async"  # a coroutine needs a loop, not a thread
        if not task.is_async and name == "async":
            name = "thread"  # a blocking function must not stall the loop
        return name

    def _in_thread(self, claimed: Claimed) -> bool:
        """True if the job runs in this process (thread or async pool), not in a child."""
        task = self.app.registry.get(claimed.job.task)
        return task is not None and self._pool_name(task) != "process"

    # -- leases, cancels, flushes ------------------------------------------------------------------

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(jitter(self.settings.extend_every))
            try:
                await self._keeper.tick()
            except Exception:  # a failed tick is retried next tick; a lease spans many ticks
                log.exception("extending leases failed")
            raise_lost_cancel()  # else a shutdown would wait for this loop forever

    def _heartbeat(self) -> WorkerInfo:
        return WorkerInfo(
            id=self.id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            queues=self.queues,
            concurrency=self.concurrency,
            started_at=self.started_at,
            running=len(self._running),
        )

    def _cancel(self, job_id: JobId) -> None:
        task, claimed = self._running.get(job_id), self._claims.get(job_id)
        if task is not None and claimed is not None and not task.done():
            log.info("cancelling job %s on request", job_id)
            self._why_stopped[job_id] = "cancel"
            if self._in_thread(claimed) and job_id not in self.prefetch.waiting:
                # The flag a thread-pool task can check; the attempt clears it when the
                # function returns (execution.attempt), however late.
                request_stop(job_id, claimed.lease.attempt)
            task.cancel()

    def _lost(self, job_id: JobId) -> None:
        self._keeper.drop(job_id)

    def _flushed(self, outcomes: Sequence[Outcome], applied: Sequence[bool]) -> None:
        for outcome, ok in zip(outcomes, applied, strict=True):
            self._keeper.drop(outcome.lease.job_id)
            if not ok:
                log.warning("outcome of job %s rejected: its lease was lost", outcome.lease.job_id)

    def _too_stuck(self) -> None:
        if self._stopping.is_set():
            return  # threads abandoned by a shutdown past its grace: not a reason to restart
        log.error("too many threads are stuck past their time limit; draining to restart")
        self.request_stop(restart=True)

    # -- shutdown ------------------------------------------------------------------------------

    async def _shutdown(self, helpers: list[asyncio.Task[None]]) -> None:
        self._stopping.set()
        if self.scheduler is not None:
            self.scheduler.stop()
        for job_id in self.prefetch.waiting:  # not started: released now, not after the grace
            self._why_stopped[job_id] = "shutdown"
            self._running[job_id].cancel()
        if self._running:
            log.info(
                "draining %d running jobs (grace %ss)",
                len(self._running),
                self.grace.total_seconds(),
            )
            await self._first(
                asyncio.wait(list(self._running.values()), timeout=self.grace.total_seconds()),
                self._forced.wait(),
            )
        leftover = list(self._running.items())
        for job_id, task in leftover:
            self._why_stopped[job_id] = "shutdown"
            task.cancel()
        await asyncio.gather(*(t for _, t in leftover), return_exceptions=True)
        if leftover:
            log.info("released %d jobs that did not finish within the grace", len(leftover))
        with contextlib.suppress(Exception):
            async with asyncio.timeout(30):
                await self._completer.drain()
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        for pool in self._pools.values():
            await pool.stop()
        self._liveness.release()


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
