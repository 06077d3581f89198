"""Procrastinate on PostgreSQL (psycopg 3 with its C speedups, `psycopg[binary]`): LISTEN/NOTIFY
wake-up, one job per fetch query (`procrastinate_fetch_job_v2`).

Worker: `procrastinate --app=bench_procrastinate.app --log-level=warning worker --concurrency N
--delete-jobs=always`, one process. Its concurrency is 1 by default ("each worker only takes one
job at a time"); the concurrency how-to raises it for async tasks (its example: 30). Variants:
c100 (errands' concurrency, the main one) and c30. `--delete-jobs=always` as the production
how-to suggests ("delete jobs on completion"): the jobs table stays small instead of growing by
every finished job. The connector's psycopg pool gets `max_size` = concurrency + 4, because
every sub-worker borrows a connection to finish its job: with psycopg_pool's default (4
connections) c100 drained slower here (~270 against ~370-470 jobs/s, 5,000 jobs). The docs
leave the pool to psycopg's defaults.

Producer: `await task.defer_async(a=1, b=2)` one at a time and `await
task.batch_defer_async(*[...])` with BENCH_BATCH jobs per call (one INSERT), on uvloop, App
opened with `open_async()` (Procrastinate is async first; its sync defer goes through another
connector).

Round trip: `defer_async` + the job's status read every 1 ms with
`job_manager.get_job_status_async` until `succeeded` (Procrastinate has no result backend and
no completion notification; 1 ms is the poll interval every polling client gets here).
Round-trip jobs are kept (`delete_jobs` never on that worker), so their status can be read.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import harness
import procrastinate
from harness import BATCH, Job
from procrastinate.jobs import Status
from procrastinate.types import JSONDict

#: variant -> the worker's --concurrency; the first is the main variant (enqueue figures).
VARIANTS: dict[str, int] = {"c100": 100, "c30": 30}
#: How often the round trip reads the job's status (no push exists).
POLL_S = 0.001
#: Pool connections beyond the sub-workers: the listener, the fetch loop, heartbeats.
SPARE_CONNECTIONS = 4


#: The worker's concurrency, which its pool is sized from (the runner sets it per variant; the
#: producer's pool keeps psycopg_pool's default of 4 connections).
CONCURRENCY = int(os.environ.get("BENCH_PROCRASTINATE_CONCURRENCY", "0"))
POOL_MAX = CONCURRENCY + SPARE_CONNECTIONS if CONCURRENCY else None  # None: psycopg's default

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=harness.PG_URL, max_size=POOL_MAX)
)


@app.task(name="noop")
async def noop(a: int, b: int) -> None:
    harness.noop()


@app.task(name="incr")
async def incr(a: int, b: int) -> None:
    await harness.incr_async()


@app.task(name="add")
async def add(a: int, b: int) -> int:
    return a + b  # not stored: Procrastinate has no result backend


TASKS = {"noop": noop, "incr": incr}


class ProcrastinatePeer:
    """Procrastinate, as harness.run drives it (async calls go through a loop thread)."""

    system = "procrastinate"
    variants = tuple(VARIANTS)
    has_batch = True

    def __init__(self) -> None:
        self.loop = harness.LoopThread()
        self.loop.call(self._open())

    @staticmethod
    async def _open() -> None:
        await app.open_async()
        async with app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
            installed = await (
                await conn.execute("SELECT to_regclass('procrastinate_jobs')")
            ).fetchone()
        if not installed or installed[0] is None:
            await app.schema_manager.apply_schema_async()

    def info(self) -> dict[str, Any]:
        """Versions and configuration."""
        return {
            "versions": harness.versions(
                "procrastinate", "psycopg", "psycopg-binary", "psycopg-pool", "redis", "uvloop"
            ),
            "config": "psycopg[binary], --concurrency 100/30, --delete-jobs=always, "
            "pool max_size concurrency+4, status polled every 1 ms",
        }

    def reset(self) -> None:
        """TRUNCATE the jobs (and their events) and zero the counters."""
        harness.flush()

        async def truncate() -> None:
            async with app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
                await conn.execute("TRUNCATE procrastinate_jobs CASCADE")

        self.loop.call(truncate())

    def enqueue(self, variant: str, job: Job, n: int) -> None:
        """`await task.defer_async(a=1, b=2)` per job, all on the producer's loop."""
        task = TASKS[job]

        async def produce() -> None:
            for _ in range(n):
                await task.defer_async(a=1, b=2)

        self.loop.call(produce())

    def enqueue_batch(self, variant: str, job: Job, n: int) -> None:
        """`await task.batch_defer_async(...)` of BATCH jobs per call."""
        task = TASKS[job]
        args: JSONDict = {"a": 1, "b": 2}

        async def produce() -> None:
            for start in range(0, n, BATCH):
                await task.batch_defer_async(*[args] * min(BATCH, n - start))

        self.loop.call(produce())

    def worker(self, variant: str, phase: str) -> list[str]:
        """One `procrastinate worker` process; finished jobs deleted except round-trip ones."""
        concurrency = VARIANTS[variant]
        return [
            harness.python_bin("procrastinate"),
            "--app=bench_procrastinate.app",
            "--log-level=warning",
            "worker",
            f"--concurrency={concurrency}",
            f"--delete-jobs={'never' if phase == 'rtt' else 'always'}",
        ]

    def worker_env(self, variant: str) -> dict[str, str]:
        """The worker's pool is sized from its concurrency."""
        return {"BENCH_PROCRASTINATE_CONCURRENCY": str(VARIANTS[variant])}

    def round_trips(self, variant: str) -> list[float]:
        """`defer_async` + the job's status polled every 1 ms until `succeeded`."""
        manager = app.job_manager

        async def one() -> object:
            job_id = await add.defer_async(a=1, b=2)
            while True:
                status = await manager.get_job_status_async(job_id)
                if status == Status.SUCCEEDED:
                    return None
                if status not in (Status.TODO, Status.DOING):
                    raise RuntimeError(f"procrastinate job {job_id} ended {status}")
                await asyncio.sleep(POLL_S)

        return self.loop.call(harness.sample_round_trips_async(one, expect=None))

    def close(self) -> None:
        """Close the App's pool, then the loop."""
        self.loop.call(app.close_async())
        self.loop.close()


def main() -> None:
    """Every phase of harness.run."""
    peer = ProcrastinatePeer()
    try:
        harness.run(peer)
    finally:
        peer.close()


if __name__ == "__main__":
    import bench_procrastinate  # the worker imports bench_procrastinate.app

    bench_procrastinate.main()
