"""RQ, one `rq worker -w rq.SimpleWorker` process.

RQ's default Worker forks a child for every job (about 20 jobs/s on this kind of machine); the
SimpleWorker runs jobs in the worker process itself, the configuration RQ offers for throughput
in one process. Drain jobs are enqueued with `result_ttl=0` (RQ: results not stored), the
round-trip job with the default result TTL; `-q` keeps RQ from logging every job.
Batches go through `Queue.enqueue_many` (one pipeline per batch).
"""

from __future__ import annotations

from typing import Any

import harness
from harness import BATCH, Job
from rq import Queue

queue = Queue("bench", connection=harness.sync_client())


def noop(a: int, b: int) -> None:
    harness.noop()


def incr(a: int, b: int) -> None:
    harness.incr_sync()


def add(a: int, b: int) -> int:
    return a + b


FUNCS = {"noop": noop, "incr": incr}


class RQPeer:
    """RQ, as harness.run drives it."""

    system = "rq"
    variants = ("SimpleWorker",)
    has_batch = True

    def info(self) -> dict[str, Any]:
        """Versions and configuration."""
        return {
            "versions": harness.versions("rq", "redis", "hiredis"),
            "config": "SimpleWorker (no fork per job), result_ttl=0 for drain jobs, -q",
        }

    def reset(self) -> None:
        """FLUSHDB between phases."""
        harness.flush()

    def enqueue(self, variant: str, job: Job, n: int) -> None:
        """`queue.enqueue()` per job."""
        func = FUNCS[job]
        for _ in range(n):
            queue.enqueue(func, 1, 2, result_ttl=0)

    def enqueue_batch(self, variant: str, job: Job, n: int) -> None:
        """`queue.enqueue_many()` of BATCH jobs per call."""
        func = FUNCS[job]
        for start in range(0, n, BATCH):
            queue.enqueue_many(
                [
                    Queue.prepare_data(func, (1, 2), result_ttl=0)
                    for _ in range(min(BATCH, n - start))
                ]
            )

    def worker(self, variant: str, phase: str) -> list[str]:
        """One `rq worker` process, SimpleWorker class."""
        return [
            harness.python_bin("rq"),
            "worker",
            "bench",
            "--url",
            harness.REDIS_URL,
            "--worker-class",
            "rq.worker.SimpleWorker",
            "--quiet",
        ]

    def round_trips(self, variant: str) -> list[float]:
        """enqueue + `job.latest_result(timeout=)` (blocks on the job's result stream)."""

        def one() -> object:
            result = queue.enqueue(add, 1, 2).latest_result(timeout=60)
            return None if result is None else result.return_value

        return harness.sample_round_trips(one)


def main() -> None:
    """Every phase of harness.run."""
    harness.run(RQPeer())


if __name__ == "__main__":
    import bench_rq  # the worker resolves jobs as bench_rq.noop etc.

    bench_rq.main()
