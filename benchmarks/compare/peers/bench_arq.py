"""arq (asyncio, Redis sorted-set queue), one `arq bench_arq.WorkerSettings` process.

arq's worker reads up to `queue_read_limit` job ids per poll, runs at most `max_jobs` at once,
then sleeps what is left of `poll_delay` (0.5 s by default) before the next poll; with the
defaults (max_jobs=10) one worker runs a few hundred jobs/s. Configured for throughput here:
`max_jobs=100` (the async concurrency errands runs with), `poll_delay=0.01`, drain jobs with
`keep_result=0` (arq: "if 0 the result is not kept"), the round-trip job keeps its result and
is read with `job.result(poll_delay=0.001)` (arq polls for results). The worker runs on uvloop
(the event loop policy is set when this module is imported) and logs at WARNING. arq has no
batch enqueue.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import harness
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import ResultNotFound
from arq.worker import func
from harness import Job

try:  # the worker's loop: arq builds it with asyncio.get_event_loop() / new_event_loop()
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
except ImportError:
    pass

REDIS = RedisSettings.from_dsn(harness.REDIS_URL)
POLL_S = 0.01
#: How often a waiting producer polls for a result (arq has no push): every 1 ms, as for every
#: polling client in this harness, so that the round trip measures the queue, not the poll.
RESULT_POLL_S = 0.001


async def noop(ctx: dict[str, Any], a: int, b: int) -> None:
    harness.noop()


async def incr(ctx: dict[str, Any], a: int, b: int) -> None:
    await harness.incr_async()


async def add(ctx: dict[str, Any], a: int, b: int) -> int:
    return a + b


async def quiet(ctx: dict[str, Any]) -> None:
    """arq logs two INFO lines per job; its CLI sets INFO after importing this module."""
    logging.getLogger("arq").setLevel(logging.WARNING)


class WorkerSettings:
    """Read by `arq bench_arq.WorkerSettings` (arq reads the class's own attributes)."""

    functions = [func(noop, keep_result=0), func(incr, keep_result=0), add]  # noqa: RUF012
    redis_settings = REDIS
    max_jobs = 100
    poll_delay = POLL_S
    on_startup = quiet


class ArqPeer:
    """arq, as harness.run drives it (async calls go through a loop thread)."""

    system = "arq"
    variants = ("c100",)
    has_batch = False

    def __init__(self) -> None:
        self.loop = harness.LoopThread()
        self.pool: ArqRedis = self.loop.call(create_pool(REDIS))

    def info(self) -> dict[str, Any]:
        """Versions and configuration."""
        return {
            "versions": harness.versions("arq", "redis", "hiredis", "uvloop"),
            "config": "max_jobs=100, poll_delay=0.01, keep_result=0 for drain jobs, uvloop",
        }

    def reset(self) -> None:
        """FLUSHDB between phases."""
        harness.flush()

    def enqueue(self, variant: str, job: Job, n: int) -> None:
        """`await pool.enqueue_job()` per job, the whole loop on the producer's event loop."""

        async def produce() -> None:
            for _ in range(n):
                await self.pool.enqueue_job(job, 1, 2)

        self.loop.call(produce())

    def enqueue_batch(self, variant: str, job: Job, n: int) -> None:
        """arq has no batch API (never called: has_batch is False)."""
        raise NotImplementedError

    def worker(self, variant: str, phase: str) -> list[str]:
        """One `arq` worker process."""
        return [harness.python_bin("arq"), "bench_arq.WorkerSettings"]

    def round_trips(self, variant: str) -> list[float]:
        """`enqueue_job` + `job.result(poll_delay=0.001)`."""

        async def one() -> object:
            job = await self.pool.enqueue_job("add", 1, 2)
            assert job is not None
            try:
                return await job.result(timeout=60, poll_delay=RESULT_POLL_S)
            except ResultNotFound:  # arq reads the result and the queue in two steps: ask again
                return await job.result(timeout=60, poll_delay=RESULT_POLL_S)

        return self.loop.call(harness.sample_round_trips_async(one))

    def close(self) -> None:
        """Close the pool, then the loop."""
        self.loop.call(self.pool.aclose())
        self.loop.close()


def main() -> None:
    """Every phase of harness.run."""
    peer = ArqPeer()
    try:
        harness.run(peer)
    finally:
        peer.close()


if __name__ == "__main__":
    import bench_arq  # the worker imports bench_arq.WorkerSettings

    bench_arq.main()
