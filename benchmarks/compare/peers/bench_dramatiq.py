"""Dramatiq with its RedisBroker; the Results middleware (Redis backend) for the round trip.

Worker: `dramatiq bench_dramatiq --processes 1 --threads 8` (one worker process, Dramatiq's
default thread count; the CLI's default process count is one per core). Default middleware and
prefetch (threads x 2). The drain actors store no result (Dramatiq's default); the round-trip
actor has `store_results=True`. Dramatiq has no batch enqueue: `group(...).run()` is the call
that sends many messages, one `enqueue` each.
"""

from __future__ import annotations

from typing import Any

import dramatiq
import harness
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend
from harness import BATCH, Job

broker = RedisBroker(url=harness.REDIS_URL)
broker.add_middleware(Results(backend=RedisBackend(url=harness.REDIS_URL)))
dramatiq.set_broker(broker)


@dramatiq.actor
def noop(a: int, b: int) -> None:
    harness.noop()


@dramatiq.actor
def incr(a: int, b: int) -> None:
    harness.incr_sync()


@dramatiq.actor(store_results=True)
def add(a: int, b: int) -> int:
    return a + b


ACTORS = {"noop": noop, "incr": incr}


class DramatiqPeer:
    """Dramatiq, as harness.run drives it."""

    system = "dramatiq"
    variants = ("p1-t8",)
    has_batch = True  # group(...).run(): one call, one enqueue per message underneath

    def info(self) -> dict[str, Any]:
        """Versions and configuration."""
        return {
            "versions": harness.versions("dramatiq", "redis", "hiredis"),
            "config": "RedisBroker, --processes 1 --threads 8, default middleware",
        }

    def reset(self) -> None:
        """FLUSHDB between phases."""
        harness.flush()

    def enqueue(self, variant: str, job: Job, n: int) -> None:
        """`actor.send()` per job."""
        actor = ACTORS[job]
        for _ in range(n):
            actor.send(1, 2)

    def enqueue_batch(self, variant: str, job: Job, n: int) -> None:
        """`group([...]).run()` of BATCH messages per call."""
        actor = ACTORS[job]
        for start in range(0, n, BATCH):
            dramatiq.group(actor.message(1, 2) for _ in range(min(BATCH, n - start))).run()

    def worker(self, variant: str, phase: str) -> list[str]:
        """One `dramatiq` worker process with 8 threads."""
        return [
            harness.python_bin("dramatiq"),
            "bench_dramatiq",
            "--processes",
            "1",
            "--threads",
            "8",
        ]

    def round_trips(self, variant: str) -> list[float]:
        """`add.send()` + `get_result(block=True)` (a blocking pop on the result key)."""
        return harness.sample_round_trips(
            lambda: add.send(1, 2).get_result(block=True, timeout=60_000)
        )


def main() -> None:
    """Every phase of harness.run."""
    harness.run(DramatiqPeer())


if __name__ == "__main__":
    import bench_dramatiq  # actors are registered under the module the worker imports

    bench_dramatiq.main()
