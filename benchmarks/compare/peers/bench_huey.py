"""Huey with RedisHuey (blocking BRPOP dequeue, its default), `notify_result=True`.

Consumer: `huey_consumer bench_huey.huey -w 8 -k thread -q` (one process, eight worker threads:
Huey's docs suggest threads for I/O-bound work). The drain tasks return None, which Huey does
not store; the round-trip task's result is waited for with BLPOP on a notify key
(`notify_result=True`, Huey's low-latency result wait) rather than by polling. `task.map()` is
the one call that enqueues many (it enqueues them one by one).
"""

from __future__ import annotations

from typing import Any

import harness
from harness import BATCH, Job
from huey import RedisHuey

huey = RedisHuey("bench", url=harness.REDIS_URL, notify_result=True)


@huey.task()
def noop(a: int, b: int) -> None:
    harness.noop()


@huey.task()
def incr(a: int, b: int) -> None:
    harness.incr_sync()


@huey.task()
def add(a: int, b: int) -> int:
    return a + b


TASKS = {"noop": noop, "incr": incr}


class HueyPeer:
    """Huey, as harness.run drives it."""

    system = "huey"
    variants = ("w8-thread",)
    has_batch = True  # task.map(): one call, one enqueue per job underneath

    def info(self) -> dict[str, Any]:
        """Versions and configuration."""
        return {
            "versions": harness.versions("huey", "redis", "hiredis"),
            "config": "RedisHuey (BRPOP), notify_result, consumer -w 8 -k thread",
        }

    def reset(self) -> None:
        """FLUSHDB between phases."""
        harness.flush()

    def enqueue(self, variant: str, job: Job, n: int) -> None:
        """Calling the task enqueues it."""
        task = TASKS[job]
        for _ in range(n):
            task(1, 2)

    def enqueue_batch(self, variant: str, job: Job, n: int) -> None:
        """`task.map()` of BATCH argument tuples per call."""
        task = TASKS[job]
        for start in range(0, n, BATCH):
            task.map([(1, 2)] * min(BATCH, n - start))

    def worker(self, variant: str, phase: str) -> list[str]:
        """One consumer process with eight threads."""
        return [
            harness.python_bin("huey_consumer"),
            "bench_huey.huey",
            "-w",
            "8",
            "-k",
            "thread",
            "-q",
        ]

    def round_trips(self, variant: str) -> list[float]:
        """`add()` + `result.get(blocking=True)` (BLPOP on the notify key)."""
        return harness.sample_round_trips(lambda: add(1, 2).get(blocking=True, timeout=60))


def main() -> None:
    """Every phase of harness.run."""
    harness.run(HueyPeer())


if __name__ == "__main__":
    import bench_huey  # the consumer imports bench_huey.huey and its tasks

    bench_huey.main()
