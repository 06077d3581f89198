"""SAQ (asyncio, Redis lists), one worker process: `saq bench_saq.settings --workers 1 --quiet`.

SAQ's default concurrency, 10: at 100 it ran slower here (and, with redis-py's default pool of
100 connections, failed jobs with "Too many connections"). Drain jobs with `ttl=-1` (SAQ
deletes the job, result included, once it is done); the round-trip job with the default ttl,
waited for with `job.refresh(until_complete=...)` (SAQ's pub/sub job updates, not polling).
The worker runs on uvloop (policy set when this module is imported).
SAQ has no batch enqueue (`queue.map` enqueues and then waits for every result).

The round trips start once the worker has run its start-up sweep (the sweep lock key exists):
SAQ's sweeper aborts a job that sits in the active list before the worker has marked it active,
which can hit a job enqueued while the worker is starting.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import harness
from harness import Job
from saq import Queue
from saq.job import Status

try:  # the worker's loop (the saq CLI creates it after importing the settings module)
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
except ImportError:
    pass

queue = Queue.from_url(harness.REDIS_URL)


async def noop(ctx: dict[str, Any], *, a: int, b: int) -> None:
    harness.noop()


async def incr(ctx: dict[str, Any], *, a: int, b: int) -> None:
    await harness.incr_async()


async def add(ctx: dict[str, Any], *, a: int, b: int) -> int:
    return a + b


settings = {"queue": queue, "functions": [noop, incr, add], "concurrency": 10}


class SaqPeer:
    """SAQ, as harness.run drives it (async calls go through a loop thread)."""

    system = "saq"
    variants = ("c10",)
    has_batch = False

    def __init__(self) -> None:
        self.loop = harness.LoopThread()
        # The producer's own Queue, made on the producer's loop (its client binds to it).
        self.queue: Queue = self.loop.call(self._connect())

    @staticmethod
    async def _connect() -> Queue:
        producer = Queue.from_url(harness.REDIS_URL)
        await producer.connect()
        return producer

    def info(self) -> dict[str, Any]:
        """Versions and configuration."""
        return {
            "versions": harness.versions("saq", "redis", "hiredis", "uvloop"),
            "config": "concurrency=10 (default), ttl=-1 for drain jobs, refresh(), uvloop",
        }

    def reset(self) -> None:
        """FLUSHDB between phases."""
        harness.flush()

    def enqueue(self, variant: str, job: Job, n: int) -> None:
        """`await queue.enqueue()` per job, the whole loop on the producer's event loop."""

        async def produce() -> None:
            for _ in range(n):
                await self.queue.enqueue(job, ttl=-1, a=1, b=2)

        self.loop.call(produce())

    def enqueue_batch(self, variant: str, job: Job, n: int) -> None:
        """SAQ has no batch API (never called: has_batch is False)."""
        raise NotImplementedError

    def worker(self, variant: str, phase: str) -> list[str]:
        """One `saq` worker process."""
        return [harness.python_bin("saq"), "bench_saq.settings", "--workers", "1", "--quiet"]

    def round_trips(self, variant: str) -> list[float]:
        """`queue.enqueue` + `job.refresh(until_complete=60)`."""
        sweep_lock = self.queue.namespace("sweep")
        deadline = time.monotonic() + 60
        while not harness.sync_client().exists(sweep_lock):
            if time.monotonic() > deadline:
                raise TimeoutError("the saq worker did not start within 60 s")
            time.sleep(0.02)

        async def one() -> object:
            job = await self.queue.enqueue("add", a=1, b=2)
            assert job is not None
            await job.refresh(until_complete=60)
            if job.status != Status.COMPLETE:
                raise RuntimeError(f"saq job {job.id} ended {job.status}: {job.error}")
            return job.result

        return self.loop.call(harness.sample_round_trips_async(one))

    def close(self) -> None:
        """Disconnect, then stop the loop."""
        self.loop.call(self.queue.disconnect())
        self.loop.close()


def main() -> None:
    """Every phase of harness.run."""
    peer = SaqPeer()
    try:
        harness.run(peer)
    finally:
        peer.close()


if __name__ == "__main__":
    import bench_saq  # the worker imports bench_saq.settings

    bench_saq.main()
