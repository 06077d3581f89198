"""SAQ's PostgreSQL queue (`saq[postgres]`: psycopg 3, here with its C speedups,
`psycopg[binary]`), one worker process: `saq bench_saq_pg.settings --workers 1 --quiet`.

The worker's tasks wait on LISTEN/NOTIFY; the one that wakes dequeues as many jobs as there are
waiting tasks in one `FOR UPDATE SKIP LOCKED` query. Variants: c10 (SAQ's default concurrency,
the main one) and c100 (errands' concurrency); the queue keeps its default pool (4 to 20
psycopg connections). Drain jobs with `ttl=-1` (SAQ deletes the job row once it is done, result
included); the round-trip job with the default ttl, so its result can be read. The worker runs
on uvloop (policy set when this module is imported). SAQ has no batch enqueue (`queue.map`
enqueues one by one and then waits for every result).

Round trip: `queue.apply("add", poll_interval=0.001, ...)`: enqueue, then the job is read
every 1 ms until it is done, and its result returned. SAQ's PostgreSQL queue has no push for
job updates (its `listen` polls, every 0.5 s by default; 1 ms is the poll interval every
polling client gets here).
"""

from __future__ import annotations

import asyncio
from typing import Any

import harness
from harness import Job
from saq import Queue

try:  # the worker's loop (the saq CLI creates it after importing the settings module)
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
except ImportError:
    pass

#: variant -> the worker's concurrency; the first is the main variant (enqueue figures).
VARIANTS: dict[str, int] = {"c10": 10, "c100": 100}
#: How often a waiting producer reads the job (SAQ's PostgreSQL queue only polls).
RESULT_POLL_S = 0.001
#: SAQ's own tables (TRUNCATEd between phases; they live in the benchmark's database).
TABLES = "saq_jobs, saq_stats"

queue = Queue.from_url(harness.PG_URL)


async def noop(ctx: dict[str, Any], *, a: int, b: int) -> None:
    harness.noop()


async def incr(ctx: dict[str, Any], *, a: int, b: int) -> None:
    await harness.incr_async()


async def add(ctx: dict[str, Any], *, a: int, b: int) -> int:
    return a + b


def _settings(concurrency: int) -> dict[str, Any]:
    return {"queue": queue, "functions": [noop, incr, add], "concurrency": concurrency}


settings = _settings(VARIANTS["c10"])
settings_c100 = _settings(VARIANTS["c100"])
SETTINGS = {"c10": "bench_saq_pg.settings", "c100": "bench_saq_pg.settings_c100"}


class SaqPgPeer:
    """SAQ on PostgreSQL, as harness.run drives it (async calls go through a loop thread)."""

    system = "saq_pg"
    variants = tuple(VARIANTS)
    has_batch = False

    def __init__(self) -> None:
        self.loop = harness.LoopThread()
        # The producer's own Queue, made on the producer's loop (its pool binds to it).
        self.queue: Queue = self.loop.call(self._connect())

    @staticmethod
    async def _connect() -> Queue:
        producer = Queue.from_url(harness.PG_URL)
        await producer.connect()  # creates SAQ's tables on first use
        return producer

    def info(self) -> dict[str, Any]:
        """Versions and configuration."""
        return {
            "versions": harness.versions(
                "saq", "psycopg", "psycopg-binary", "psycopg-pool", "redis", "uvloop"
            ),
            "config": "PostgresQueue, concurrency 10 (default) and 100, ttl=-1 for drain jobs, "
            "apply(poll_interval=0.001), uvloop",
        }

    def reset(self) -> None:
        """TRUNCATE SAQ's jobs and stats and zero the counters."""
        harness.flush()

        async def truncate() -> None:
            async with self.queue.pool.connection() as conn:  # type: ignore[attr-defined]
                await conn.execute(f"TRUNCATE {TABLES}")

        self.loop.call(truncate())

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
        """One `saq` worker process with the variant's concurrency."""
        return [harness.python_bin("saq"), SETTINGS[variant], "--workers", "1", "--quiet"]

    def round_trips(self, variant: str) -> list[float]:
        """`queue.apply("add", poll_interval=0.001)`: enqueue, wait, read the result."""

        async def one() -> object:
            return await self.queue.apply("add", timeout=60, poll_interval=RESULT_POLL_S, a=1, b=2)

        return self.loop.call(harness.sample_round_trips_async(one))

    def close(self) -> None:
        """Disconnect, then stop the loop."""
        self.loop.call(self.queue.disconnect())
        self.loop.close()


def main() -> None:
    """Every phase of harness.run."""
    peer = SaqPgPeer()
    try:
        harness.run(peer)
    finally:
        peer.close()


if __name__ == "__main__":
    import bench_saq_pg  # the worker imports bench_saq_pg.settings

    bench_saq_pg.main()
