"""Celery on RabbitMQ (its default amqp transport: kombu over py-amqp, no librabbitmq), results
through the RPC backend (`rpc://`, which Celery's docs give for RPC-style calls whose caller
waits for the result: the result comes back as a message on the caller's own queue).

The same throughput settings as on Redis, from Celery's "Optimizing" guide: a large prefetch
multiplier (64; on RabbitMQ it is the channel's basic.qos prefetch count, 64 x concurrency),
results ignored on the drain tasks (the round-trip task keeps its result), rate limits
disabled; queues as Celery declares them by default (durable classic queue, persistent
messages: the guide's transient queues would trade durability for speed, which errands does
not). Workers: `celery worker -P prefork -c 2` and `-P threads -c 8`, mingle/gossip/heartbeat
off, logging at WARNING. The queue is purged between phases (`app.control.purge()`) in the
run's own vhost.
"""

from __future__ import annotations

from typing import Any

import harness
from celery import Celery, group
from harness import BATCH, Job

app = Celery("bench_celery_amqp", broker=harness.AMQP_URL, backend="rpc://")
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


class CeleryAmqpPeer:
    """Celery on RabbitMQ, as harness.run drives it."""

    system = "celery_amqp"
    variants = tuple(VARIANTS)
    has_batch = True  # group(...).apply_async(): one call, though it publishes one by one

    def info(self) -> dict[str, Any]:
        """Versions and configuration."""
        return {
            "versions": harness.versions("celery", "kombu", "amqp", "redis"),
            "broker": harness.AMQP_URL.split("@")[-1],
            "config": "py-amqp transport, rpc:// results, prefetch x64, ignore_result, "
            "rate limits off; prefork c2 / threads c8",
        }

    def reset(self) -> None:
        """Purge the task queue, then FLUSHDB (the counters)."""
        app.control.purge()
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
            "bench_celery_amqp",
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
        """`add.delay().get()` (the RPC backend consumes the reply from this client's queue)."""
        return harness.sample_round_trips(lambda: add.delay(1, 2).get(timeout=60))


def main() -> None:
    """Every phase of harness.run."""
    harness.run(CeleryAmqpPeer())


if __name__ == "__main__":
    import bench_celery_amqp  # task names are module-qualified: register them as the worker will

    bench_celery_amqp.main()
