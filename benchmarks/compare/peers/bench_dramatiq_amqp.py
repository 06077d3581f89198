"""Dramatiq with its RabbitmqBroker (pika); the Results middleware with the Redis backend (our
database 13) for the round trip: Dramatiq has no RabbitMQ result backend.

Worker: `dramatiq bench_dramatiq_amqp --processes 1 --threads 8` (one worker process, Dramatiq's
default thread count). Default middleware, default prefetch (basic.qos of threads x 2 = 16 on
the main queue: Dramatiq's documented default; a larger `dramatiq_queue_prefetch` only holds
more messages unacked in one worker), `confirm_delivery` off (the broker's default), durable
queues and persistent messages as Dramatiq declares them. The drain actors store no result;
the round-trip actor has `store_results=True`. No batch enqueue: `group(...).run()` sends one
message per `enqueue`. Queues are purged between phases (`broker.flush_all()`) in the run's
own vhost.
"""

from __future__ import annotations

from typing import Any

import dramatiq
import harness
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend
from harness import BATCH, Job

broker = RabbitmqBroker(url=harness.AMQP_URL)
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


class DramatiqAmqpPeer:
    """Dramatiq on RabbitMQ, as harness.run drives it."""

    system = "dramatiq_amqp"
    variants = ("p1-t8",)
    has_batch = True  # group(...).run(): one call, one enqueue per message underneath

    def info(self) -> dict[str, Any]:
        """Versions and configuration."""
        return {
            "versions": harness.versions("dramatiq", "pika", "redis", "hiredis"),
            "broker": harness.AMQP_URL.split("@")[-1],
            "config": "RabbitmqBroker, --processes 1 --threads 8, default middleware and "
            "prefetch, Redis result backend",
        }

    def reset(self) -> None:
        """Purge the declared queues, then FLUSHDB (counters and results)."""
        broker.flush_all()
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
            "bench_dramatiq_amqp",
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
    harness.run(DramatiqAmqpPeer())


if __name__ == "__main__":
    import bench_dramatiq_amqp  # actors are registered under the module the worker imports

    bench_dramatiq_amqp.main()
