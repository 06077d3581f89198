"""Scale of errands (run by hand; prints figures):

    python benchmarks/scale.py backlog      # cost per job with 1,000 ... 1,000,000 jobs queued
    python benchmarks/scale.py sleepers     # 10,000 concurrent `await asyncio.sleep(1)` jobs
    python benchmarks/scale.py backlog --sizes 1000,1000000 \
        --url 'postgresql://postgres@127.0.0.1:5432/test?schema=scale_{size}'

On SQLite (the default) each size gets a fresh file; with `--url`, `{size}` in the URL names
fresh storage per size (a schema, a key prefix), whose jobs are purged at the end.

`backlog` fills a fresh database to each size with batch enqueues, then times claim-run-finish
of the same 10,000 no-op jobs (async pool) and an enqueue of 10,000 more: per-job cost should
not grow with the backlog. `sleepers` runs 10,000 sleeping jobs at once on one worker and
reports wall time and the worker's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import errands
from errands.job import JobState

sys.path.insert(0, str(Path(__file__).resolve().parent))


def backlog(sizes: list[int], measured: int, url: str | None) -> None:
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            app = errands.App(url.format(size=size) if url else f"sqlite:///{tmp}/scale.db")

            @app.task(name="noop")
            async def noop(i: int) -> int:
                return i

            @app.task(name="later", queue="later")
            async def later(i: int) -> int:
                return i

            # The backlog waits in its own queue, so every run drains the same 10,000 jobs.
            for start in range(0, size, 5000):
                later.enqueue_many([(i,) for i in range(start, min(size, start + 5000))])
            began = time.perf_counter()
            noop.enqueue_many([(i,) for i in range(measured)])
            enqueued = time.perf_counter() - began
            began = time.perf_counter()
            ran = app.run_until_idle(queues=["default"], pool="async", concurrency=200)
            drained = time.perf_counter() - began
            assert ran == measured
            print(
                json.dumps(
                    {
                        "backlog": size,
                        "enqueue_us_per_job": round(enqueued / measured * 1e6, 1),
                        "drain_us_per_job": round(drained / measured * 1e6, 1),
                        "drain_jobs_per_s": round(measured / drained),
                    }
                ),
                flush=True,
            )
            if url:
                for queue in ("default", "later"):
                    app.portal.call(app.call_broker, lambda b, q=queue: b.purge(q, list(JobState)))
            app.close()


def sleepers(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = errands.App(f"sqlite:///{tmp}/sleepers.db")

        @app.task(name="nap")
        async def nap(seconds: float) -> None:
            await asyncio.sleep(seconds)

        nap.enqueue_many([(1.0,)] * count)
        began = time.perf_counter()
        ran = app.run_until_idle(pool="async", concurrency=count)
        wall = time.perf_counter() - began
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(
            json.dumps(
                {
                    "sleepers": count,
                    "ran": ran,
                    "wall_s": round(wall, 2),
                    "peak_rss_mb": round(peak_kib / 1024, 1),
                    "pid": os.getpid(),
                }
            ),
            flush=True,
        )
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["backlog", "sleepers"])
    parser.add_argument(
        "--sizes", default="1000,10000,100000,1000000", help="backlog sizes, comma-separated"
    )
    parser.add_argument("--measured", type=int, default=10_000)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--url", help="a broker URL with {size} in it (default: SQLite files)")
    args = parser.parse_args()
    if args.what == "backlog":
        backlog([int(s) for s in args.sizes.split(",")], args.measured, args.url)
    else:
        sleepers(args.count)


if __name__ == "__main__":
    main()
