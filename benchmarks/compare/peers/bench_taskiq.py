"""taskiq with taskiq-redis: RedisStreamBroker (acknowledged, the durable one of its three Redis
brokers) with RedisAsyncResultBackend, as in taskiq-redis's README, results expiring after 10
minutes (the README "highly recommends" an expiry).

Worker: `taskiq worker bench_taskiq:broker --workers 1 --log-level WARNING` (one process; the
CLI's default is two), default `--max-async-tasks 100`, on uvloop (taskiq's worker uses it when
installed). Every task's result is stored (taskiq's backend stores each one, None included), as
errands does. Round trip: `await task.wait_result(check_interval=0.001)` (taskiq polls for
results, every 0.2 s by default; 1 ms as for every polling client here). taskiq has no batch
enqueue.
"""

from __future__ import annotations

from typing import Any

import harness
from harness import Job
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

broker = RedisStreamBroker(harness.REDIS_URL).with_result_backend(
    RedisAsyncResultBackend(harness.REDIS_URL, result_ex_time=600)
)
RESULT_POLL_S = 0.001


@broker.task
async def noop(a: int, b: int) -> None:
    harness.noop()


@broker.task
async def incr(a: int, b: int) -> None:
    await harness.incr_async()


@broker.task
async def add(a: int, b: int) -> int:
    return a + b


TASKS = {"noop": noop, "incr": incr}


class TaskiqPeer:
    """taskiq, as harness.run drives it (async calls go through a loop thread)."""

    system = "taskiq"
    variants = ("w1-c100",)
    has_batch = False

    def __init__(self) -> None:
        self.loop = harness.LoopThread()

    def info(self) -> dict[str, Any]:
        """Versions and configuration."""
        return {
            "versions": harness.versions("taskiq", "taskiq-redis", "redis", "hiredis", "uvloop"),
            "config": "RedisStreamBroker + RedisAsyncResultBackend, --workers 1, 100 async tasks",
        }

    def reset(self) -> None:
        """FLUSHDB, then make the stream's consumer group again (FLUSHDB drops it, and a worker
        that makes it later starts reading at '$', after the jobs already queued)."""
        harness.flush()
        self.loop.call(broker.startup())

    def enqueue(self, variant: str, job: Job, n: int) -> None:
        """`await task.kiq()` per job, the whole loop on the producer's event loop."""
        task = TASKS[job]

        async def produce() -> None:
            for _ in range(n):
                await task.kiq(1, 2)

        self.loop.call(produce())

    def enqueue_batch(self, variant: str, job: Job, n: int) -> None:
        """taskiq has no batch API (never called: has_batch is False)."""
        raise NotImplementedError

    def worker(self, variant: str, phase: str) -> list[str]:
        """One `taskiq worker` process."""
        return [
            harness.python_bin("taskiq"),
            "worker",
            "bench_taskiq:broker",
            "--workers",
            "1",
            "--log-level",
            "WARNING",
        ]

    def round_trips(self, variant: str) -> list[float]:
        """`kiq` + `wait_result(check_interval=0.001)`."""

        async def one() -> object:
            task = await add.kiq(1, 2)
            result = await task.wait_result(check_interval=RESULT_POLL_S, timeout=60)
            return result.return_value

        return self.loop.call(harness.sample_round_trips_async(one))

    def close(self) -> None:
        """Shut the broker down, then the loop."""
        self.loop.call(broker.shutdown())
        self.loop.close()


def main() -> None:
    """Every phase of harness.run."""
    peer = TaskiqPeer()
    try:
        harness.run(peer)
    finally:
        peer.close()


if __name__ == "__main__":
    import bench_taskiq  # task names are module-qualified: register them as the worker will

    bench_taskiq.main()
