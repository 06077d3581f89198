"""PgQueuer on PostgreSQL (asyncpg driver): LISTEN/NOTIFY wake-up, FOR UPDATE SKIP LOCKED dequeue.

Set up as PgQueuer's performance-tuning guide recommends for throughput: the asyncpg driver
(its benchmark page: ~1.7x psycopg), one dedicated asyncpg connection for the worker's
QueueManager, `pgq autovac` applied after `pgq install` (the guide's checklist: autovacuum at 1%
dead tuples without cost delay, fillfactor 70 on the queue table), `batch_size` raised for
short jobs. Kept at their defaults: durability `durable` (logged tables, as errands' are),
`max_concurrent_tasks` unset (no cap), `dequeue_timeout` 30 s (a NOTIFY wakes the worker
before that).

Worker: `pgq run bench_pgqueuer:create_pgqueuer --batch-size B --log-level WARNING`, one
process (the CLI runs it on uvloop; it needs typer 0.19.2 here: under typer 0.29, `pgq run`
dies before starting, 'str' object has no attribute 'name'). Variants: b25 (the guide's
example, the main one), b100 (fewer dequeue round trips still), b10 (the default), b1 (each
job's final status written at once: the round-trip setting). The worker writes finished jobs'
statuses in batches of B or every ~0.1 s, so with B > 1 a round trip waits for that flush.

Producer: `Queries.enqueue(entrypoint, payload)` one job per call, and `Queries.enqueue` with
lists of BENCH_BATCH (one INSERT per batch), over one asyncpg connection on uvloop. Payload
`{"a": 1, "b": 2}` as JSON bytes (PgQueuer carries bytes; decoding them is the job's part).

Round trip: `enqueue` + `CompletionWatcher.wait_for(job_id)` (LISTEN/NOTIFY on the queue
table, then a status query) with `debounce` 1 ms instead of 50 ms: the watcher coalesces
notifications for that long, and 1 ms is the poll interval every polling client gets here.
PgQueuer stores no return value, only the final status, so the round trip ends at
"successful" (nothing to read back, which favours it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import harness
from harness import BATCH, Job
from pgqueuer import PgQueuer
from pgqueuer.core.completion import CompletionWatcher
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job as PgqJob
from pgqueuer.queries import Queries

PAYLOAD = json.dumps({"a": 1, "b": 2}).encode()
#: variant -> the worker's --batch-size; the first is the main variant (enqueue figures).
VARIANTS: dict[str, int] = {"b25": 25, "b100": 100, "b10": 10, "b1": 1}
#: PgQueuer's own tables (TRUNCATEd between phases; they live in the benchmark's database).
TABLES = "pgqueuer, pgqueuer_log, pgqueuer_statistics"
#: How long the completion watcher coalesces notifications (its default is 50 ms).
DEBOUNCE = timedelta(milliseconds=1)


@asynccontextmanager
async def create_pgqueuer() -> AsyncIterator[PgQueuer]:
    """The worker's factory (`pgq run` calls it): one dedicated asyncpg connection."""
    conn = await asyncpg.connect(harness.PG_URL)
    pgq = PgQueuer.from_asyncpg_connection(conn)

    @pgq.entrypoint("noop")
    async def noop(job: PgqJob) -> None:
        json.loads(job.payload or b"{}")  # the arguments, as any job of this system reads them
        harness.noop()

    @pgq.entrypoint("incr")
    async def incr(job: PgqJob) -> None:
        json.loads(job.payload or b"{}")
        await harness.incr_async()

    @pgq.entrypoint("add")
    async def add(job: PgqJob) -> None:
        args = json.loads(job.payload or b"{}")
        args["a"] + args["b"]  # an entrypoint returns nothing: PgQueuer keeps only the status

    try:
        yield pgq
    finally:
        await conn.close()


class PgQueuerPeer:
    """PgQueuer, as harness.run drives it (async calls go through a loop thread)."""

    system = "pgqueuer"
    variants = tuple(VARIANTS)
    has_batch = True

    def __init__(self) -> None:
        self.loop = harness.LoopThread()
        self.conn: asyncpg.Connection = self.loop.call(self._connect())
        self.driver = AsyncpgDriver(self.conn)
        self.queries = Queries(self.driver)
        self.loop.call(self._install())

    @staticmethod
    async def _connect() -> asyncpg.Connection:
        return await asyncpg.connect(harness.PG_URL)

    async def _install(self) -> None:
        """`pgq install` (durable) and `pgq autovac`, once per database."""
        if not await self.queries.schema_is_installed():
            await self.queries.install()
            await self.queries.optimize_autovacuum()

    def info(self) -> dict[str, Any]:
        """Versions and configuration."""
        return {
            "versions": harness.versions("pgqueuer", "asyncpg", "redis", "hiredis", "uvloop"),
            "config": "asyncpg, durable, pgq autovac, --batch-size 25/100/10/1, "
            "CompletionWatcher debounce 1 ms",
        }

    def reset(self) -> None:
        """TRUNCATE PgQueuer's tables and zero the counters."""
        harness.flush()
        self.loop.call(self.conn.execute(f"TRUNCATE {TABLES}"))

    def enqueue(self, variant: str, job: Job, n: int) -> None:
        """`await queries.enqueue(entrypoint, payload)` per job, all on the producer's loop."""

        async def produce() -> None:
            for _ in range(n):
                await self.queries.enqueue(job, PAYLOAD)

        self.loop.call(produce())

    def enqueue_batch(self, variant: str, job: Job, n: int) -> None:
        """`queries.enqueue([...], [...], [...])` of BATCH jobs per call (one INSERT)."""

        async def produce() -> None:
            for start in range(0, n, BATCH):
                size = min(BATCH, n - start)
                await self.queries.enqueue([job] * size, [PAYLOAD] * size, [0] * size)

        self.loop.call(produce())

    def worker(self, variant: str, phase: str) -> list[str]:
        """One `pgq run` process with the variant's batch size."""
        return [
            harness.python_bin("pgq"),
            "run",
            "bench_pgqueuer:create_pgqueuer",
            "--batch-size",
            str(VARIANTS[variant]),
            "--log-level",
            "WARNING",
        ]

    def round_trips(self, variant: str) -> list[float]:
        """`enqueue` + `CompletionWatcher.wait_for` (no value to read: none is stored)."""

        async def sample() -> list[float]:
            samples: list[float] = []
            async with CompletionWatcher(
                self.driver, queries=self.queries, debounce=DEBOUNCE
            ) as watcher:

                async def one() -> object:
                    [job_id] = await self.queries.enqueue("add", PAYLOAD)
                    status = await asyncio.wait_for(watcher.wait_for(job_id), 60)
                    if status != "successful":
                        raise RuntimeError(f"pgqueuer job {job_id} ended {status}")
                    return None

                samples = await harness.sample_round_trips_async(one, expect=None)
            return samples

        return self.loop.call(sample())

    def close(self) -> None:
        """Close the producer's connection, then the loop."""
        self.loop.call(self.conn.close())
        self.loop.close()


def main() -> None:
    """Every phase of harness.run."""
    peer = PgQueuerPeer()
    try:
        harness.run(peer)
    finally:
        peer.close()


if __name__ == "__main__":
    import bench_pgqueuer  # the worker imports bench_pgqueuer:create_pgqueuer

    bench_pgqueuer.main()
