"""Celery with the Redis broker and the Redis result backend.

Configured as Celery's "Optimizing" guide says for many short tasks: a large prefetch
multiplier (64: "if you have lots of short tasks, and throughput/round trip latency is important
to you, then you want this number to be large"), results ignored where nobody reads them
(`ignore_result=True` on the drain tasks; the round-trip task keeps its result), rate limits
disabled. Workers: `celery worker -P prefork -c 2` (one per core, the CLI default here) and
`-P threads -c 8`, with mingle/gossip/heartbeat off (cluster chatter a lone worker does not
need), logging at WARNING.
"""

from __future__ import annotations

from typing import Any

import harness
from celery import Celery, group
from harness import BATCH, Job

app = Celery("bench_celery", broker=harness.REDIS_URL, backend=harness.REDIS_URL)
app.conf.update(
    worker_prefetch_multiplier=64,
    worker_disable_rate_limits=True,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(ignore_result=True)
def noop(a: int, b: int) -> None:
    harness.noop()


@app.task(ignore_result=True)
def incr(a: int, b: int) -> None:
    harness.incr_sync()


@app.task(ignore_result=False)
def add(a: int, b: int) -> int:
    return a + b


TASKS = {"noop": noop, "incr": incr}
#: variant -> (pool, concurrency)
VARIANTS = {"prefork-c2": ("prefork", 2), "threads-c8": ("threads", 8)}


class CeleryPeer:
    """Celery, as harness.run drives it."""

    system = "celery"
    variants = tuple(VARIANTS)
    has_batch = True  # group(...).apply_async(): one call, though it publishes one by one

    def info(self) -> dict[str, Any]:
        """Versions and configuration."""
        return {
            "versions": harness.versions("celery", "kombu", "redis", "hiredis"),
            "config": "prefetch x64, ignore_result, rate limits off; prefork c2 / threads c8",
        }

    def reset(self) -> None:
        """FLUSHDB between phases (queues, results, counters)."""
        harness.flush()

    def enqueue(self, variant: str, job: Job, n: int) -> None:
        """`task.delay()` per job."""
        task = TASKS[job]
        for _ in range(n):
            task.delay(1, 2)

    def enqueue_batch(self, variant: str, job: Job, n: int) -> None:
        """`group(...).apply_async()` of BATCH signatures per call."""
        task = TASKS[job]
        for start in range(0, n, BATCH):
            group(task.s(1, 2) for _ in range(min(BATCH, n - start))).apply_async()

    def worker(self, variant: str, phase: str) -> list[str]:
        """One `celery worker` (its prefork children are in its process group)."""
        pool, concurrency = VARIANTS[variant]
        return [
            harness.python_bin("celery"),
            "-A",
            "bench_celery",
            "worker",
            "-P",
            pool,
            "-c",
            str(concurrency),
            "--loglevel=WARNING",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ]

    def round_trips(self, variant: str) -> list[float]:
        """`add.delay().get()` (the Redis backend waits on pub/sub)."""
        return harness.sample_round_trips(lambda: add.delay(1, 2).get(timeout=60))


def main() -> None:
    """Every phase of harness.run."""
    harness.run(CeleryPeer())


if __name__ == "__main__":
    import bench_celery  # task names are module-qualified: register them as the worker will

    bench_celery.main()
