"""errands through its public API, on the broker at BENCH_ERRANDS_URL: run.py passes
`redis://127.0.0.1:6379/13?prefix=errands-compare` (or a SQLite file while the Redis broker is
missing from the installed package) for the Redis comparison, and
`postgresql://postgres@127.0.0.1:5432/errands_compare?schema=errands` (the database run.py
created for this system) for the PostgreSQL one, and
`amqp://guest:guest@127.0.0.1:5672/errands_compare_<run>?store=<sqlite:///.../store.db>&prefix=...`
(the run's own vhost, a SQLite companion store) for the RabbitMQ one. The jobs' counters are in
Redis whatever the broker.

Producer: `task.options(queue=...).enqueue(...)` one at a time (the blocking API most callers
use; `enqueue_async` is recorded too), `task.enqueue_many([...])` for batches. Worker: `errands
worker bench_errands:app --pool async --concurrency 100` (the main variant) and `--pool thread
--concurrency 8`, each on the phase's own queue, logging at warning. Every job keeps its result
(errands' default result_ttl, a day), as errands always does.

Each phase has a queue of its own rather than a FLUSHDB between phases: the producer's broker
stays open across phases, and flushing keys under a live broker is not something it promises
to survive.
"""

from __future__ import annotations

import glob
import os
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import harness
from harness import BATCH, Job

import errands

URL = os.environ.get("BENCH_ERRANDS_URL", "redis://127.0.0.1:6379/13?prefix=errands-compare")
app = errands.App(URL)


@app.task(name="noop_async", pool="async")
async def noop_async(a: int, b: int) -> None:
    harness.noop()


@app.task(name="noop_thread", pool="thread")
def noop_thread(a: int, b: int) -> None:
    harness.noop()


@app.task(name="incr_async", pool="async")
async def incr_async(a: int, b: int) -> None:
    await harness.incr_async()


@app.task(name="incr_thread", pool="thread")
def incr_thread(a: int, b: int) -> None:
    harness.incr_sync()


@app.task(name="add_async", pool="async")
async def add_async(a: int, b: int) -> int:
    return a + b


@app.task(name="add_thread", pool="thread")
def add_thread(a: int, b: int) -> int:
    return a + b


Pool = Literal["async", "thread"]
#: variant -> (pool, concurrency): async at 100 as the main figure, 8 threads as Dramatiq's
#: and Huey's default thread count.
VARIANTS: dict[str, tuple[Pool, int]] = {"async-c100": ("async", 100), "thread-c8": ("thread", 8)}
TASKS: dict[tuple[str, Pool], Any] = {
    ("noop", "async"): noop_async,
    ("noop", "thread"): noop_thread,
    ("incr", "async"): incr_async,
    ("incr", "thread"): incr_thread,
    ("rtt", "async"): add_async,
    ("rtt", "thread"): add_thread,
}


def queue(variant: str, phase: str) -> str:
    """The queue of one phase: nothing left by another phase can reach its worker."""
    return f"cmp_{variant.replace('-', '_')}_{phase}"


class ErrandsPeer:
    """errands, as harness.run drives it."""

    system = "errands"
    variants = tuple(VARIANTS)
    has_batch = True

    def __init__(self) -> None:
        self.clean_start()

    @staticmethod
    def clean_start() -> None:
        """An empty broker before the producer first opens it."""
        parts = urlsplit(URL)
        # On RabbitMQ the jobs live in the companion store; its queues are the run's own.
        store = parse_qs(parts.query).get("store", [""])[0] if parts.scheme == "amqp" else URL
        if store.startswith("sqlite://"):
            path = store.removeprefix("sqlite://").split("?")[0]
            for leftover in glob.glob(path + "*"):
                os.remove(leftover)
        if parts.scheme != "sqlite":
            harness.flush()  # the same dedicated database as the peers

    def info(self) -> dict[str, Any]:
        """Versions, broker and configuration."""
        found = harness.versions("errands", "redis", "hiredis", "msgspec", "uvloop")
        if urlsplit(URL).scheme.startswith("postgres"):
            # Whichever driver the PostgreSQL broker brings: the ones it does not are left out.
            drivers = harness.versions("psycopg", "psycopg-binary", "psycopg-pool", "asyncpg")
            found |= {name: v for name, v in drivers.items() if v != "missing"}
        if urlsplit(URL).scheme == "amqp":
            found |= harness.versions("aio-pika", "aiormq", "pamqp")
        return {
            "versions": found,
            "broker": URL.split("@")[-1] if "@" in URL.split("?")[0] else URL,
            "config": "async pool c100 (main) and thread pool c8; results kept (default ttl)",
        }

    def reset(self) -> None:
        """Phases use queues of their own: only the counters need zeroing."""
        harness.clear_counts()

    def task(self, variant: str, phase: str) -> Any:
        """The phase's task, bound to the phase's queue."""
        pool = VARIANTS[variant][0]
        return TASKS[(phase, pool)].options(queue=queue(variant, phase))

    def enqueue(self, variant: str, job: Job, n: int) -> None:
        """One blocking `enqueue` per job."""
        task = self.task(variant, job)
        for _ in range(n):
            task.enqueue(1, 2)

    def enqueue_batch(self, variant: str, job: Job, n: int) -> None:
        """`enqueue_many` of BATCH jobs per call (one atomic write each)."""
        task = self.task(variant, job)
        for start in range(0, n, BATCH):
            task.enqueue_many([(1, 2)] * min(BATCH, n - start))

    def worker(self, variant: str, phase: str) -> list[str]:
        """`errands worker` on the phase's queue, in the variant's pool."""
        pool, concurrency = VARIANTS[variant]
        return [
            harness.python_bin("errands"),
            "worker",
            "bench_errands:app",
            "--queues",
            queue(variant, phase),
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--log-level",
            "warning",
        ]

    def round_trips(self, variant: str) -> list[float]:
        """enqueue + handle.result(), blocking."""
        task = self.task(variant, "rtt")
        return harness.sample_round_trips(lambda: task.enqueue(1, 2).result(timeout=60))

    def enqueue_async_figure(self) -> None:
        """Single enqueue through `await task.enqueue_async(...)` on the App's own loop, for
        comparison with the async peers' producers (recorded, not in the table)."""
        task = noop_async.options(queue="cmp_enqueue_async")

        async def produce() -> None:
            for _ in range(harness.JOBS):
                await task.enqueue_async(1, 2)

        seconds = harness.timed(lambda: app.portal.call(produce))
        harness.emit(
            self.system, "-", "enqueue_async", harness.JOBS / seconds, "jobs/s", jobs=harness.JOBS
        )
        harness.note(f"errands: enqueue_async {harness.JOBS / seconds:,.0f} jobs/s")


def main() -> None:
    """Run every phase, then the enqueue_async figure; close the App."""
    peer = ErrandsPeer()
    try:
        harness.run(peer)
        harness.clear_counts()
        harness.guarded(peer.system, "-", "enqueue_async", peer.enqueue_async_figure)
    finally:
        app.close()


if __name__ == "__main__":
    import bench_errands  # the worker imports this module by that name: register tasks once

    bench_errands.main()
