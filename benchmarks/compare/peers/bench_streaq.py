"""streaq (Redis Streams with a consumer group and acks, the coredis client), one worker
process: `streaq run bench_streaq:worker`.

Worker(concurrency=100) (the async concurrency errands runs with; streaq's default is 16, with
prefetch equal to the concurrency), on uvloop (`anyio_kwargs={"use_uvloop": True}`). The drain
tasks are `silent=True` (no two INFO lines per task) and `ttl=0` (streaq stores no result); the
round-trip task keeps the default. Batches: `Worker.enqueue_many()` (one pipeline per batch).

Round trip: enqueue, then poll `task.status()` every 1 ms until DONE (completion only). streaq's
`task.result()` waits on pub/sub, but leaving coredis's PubSub context waits for its
unsubscription timeout (0.1 s) on every call, which would measure coredis, not the queue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

import harness
from harness import BATCH, Job
from streaq import TaskStatus, Worker

T = TypeVar("T")
worker = Worker(redis_url=harness.REDIS_URL, concurrency=100, anyio_kwargs={"use_uvloop": True})
STATUS_POLL_S = 0.001


@worker.task(silent=True, ttl=0)
async def noop(a: int, b: int) -> None:
    harness.noop()


@worker.task(silent=True, ttl=0)
async def incr(a: int, b: int) -> None:
    await harness.incr_async()


@worker.task
async def add(a: int, b: int) -> int:
    return a + b


TASKS = {"noop": noop, "incr": incr}


class StreaqPeer:
    """streaq, as harness.run drives it from a thread while the loop holds the producer open."""

    system = "streaq"
    variants = ("c100",)
    has_batch = True

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the producer's loop (in the main thread) and wait for it."""
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result()

    def info(self) -> dict[str, Any]:
        """Versions and configuration."""
        return {
            "versions": harness.versions("streaq", "coredis", "anyio", "redis", "uvloop"),
            "config": "concurrency=100, silent + ttl=0 drain tasks, uvloop, status poll 1 ms",
        }

    def reset(self) -> None:
        """FLUSHDB between phases (streaq's Lua library is a server function: it stays)."""
        harness.flush()

    def enqueue(self, variant: str, job: Job, n: int) -> None:
        """`await task.enqueue()` per job, the whole loop on the producer's event loop."""
        task = TASKS[job]

        async def produce() -> None:
            for _ in range(n):
                await task.enqueue(1, 2)

        self.call(produce())

    def enqueue_batch(self, variant: str, job: Job, n: int) -> None:
        """`worker.enqueue_many()` of BATCH tasks per call."""
        task = TASKS[job]

        async def produce() -> None:
            for start in range(0, n, BATCH):
                await worker.enqueue_many(
                    [task.enqueue(1, 2) for _ in range(min(BATCH, n - start))]
                )

        self.call(produce())

    def worker(self, variant: str, phase: str) -> list[str]:
        """One `streaq run` process."""
        return [harness.python_bin("streaq"), "run", "bench_streaq:worker"]

    def round_trips(self, variant: str) -> list[float]:
        """enqueue + poll `status()` every 1 ms until DONE."""

        async def one() -> object:
            task = await add.enqueue(1, 2)
            # Polling is the point: streaq's push (result()) costs coredis's 0.1 s unsubscribe.
            while await task.status() != TaskStatus.DONE:  # noqa: ASYNC110
                await asyncio.sleep(STATUS_POLL_S)
            return None

        return self.call(harness.sample_round_trips_async(one, expect=None))


async def amain() -> None:
    """Hold the producer's connection open on this loop while the driver runs in a thread
    (streaq's Worker context must be entered and left by one task)."""
    async with worker:
        peer = StreaqPeer(asyncio.get_running_loop())
        await asyncio.to_thread(harness.run, peer)


def main() -> None:
    """Every phase of harness.run."""
    harness.stop_on_sigterm()
    with asyncio.Runner(loop_factory=harness.new_loop) as runner:
        runner.run(amain())


if __name__ == "__main__":
    import bench_streaq  # the worker imports bench_streaq:worker

    bench_streaq.main()
