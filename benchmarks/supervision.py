"""The cost of supervision: drain of no-op jobs while 1,000 long jobs hold extended leases.

    python benchmarks/supervision.py [--broker sqlite|memory] [--json]

Prints drain/s with no long jobs and with 1,000 long jobs running (their leases extended every
tick), and how many extend() round trips per second the broker sustains for 1,000 leases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import errands
from errands.brokers.contract import ClaimOptions, WorkerInfo
from errands.job import JobState
from errands.settings import Settings

LONG = 1000
done = JobState.COMPLETED


def emit(args: argparse.Namespace, broker: str, metric: str, value: float, unit: str) -> None:
    if args.json:
        row = {
            "broker": broker,
            "pool": "async",
            "metric": metric,
            "value": round(value, 1),
            "unit": unit,
        }
        print(json.dumps(row), flush=True)
    else:
        print(f"{broker:7} {metric:40} {value:12,.1f} {unit}", flush=True)


def make_app(url: str) -> tuple[errands.App, errands.Task, errands.Task]:
    # Extend every 0.5 s so the 1,000 leases are really extended during the drain.
    settings = Settings(
        broker_url=url, extend_every=timedelta(seconds=0.5), lease=timedelta(seconds=5)
    )
    app = errands.App(settings=settings)

    @app.task(name="noop")
    async def noop(i: int) -> int:
        return i

    release = asyncio.Event()

    @app.task(name="long", queue="long")
    async def long(i: int) -> int:
        await release.wait()
        return i

    app.release = release  # type: ignore[attr-defined]
    return app, noop, long


async def drain(url: str, jobs: int, with_long: bool) -> tuple[float, int]:
    app, noop, long = make_app(url)
    worker = app.worker(concurrency=LONG + 200, pool="async", queues=["default", "long"])
    runner = asyncio.create_task(worker.run())
    await asyncio.sleep(0)  # the worker adopts this loop before any enqueue starts a portal thread
    if with_long:
        await long.enqueue_many_async([(i,) for i in range(LONG)])
        while worker.running < LONG:  # noqa: ASYNC110 - a benchmark's start-up, not a hot path
            await asyncio.sleep(0.01)
    # Enqueue into a paused queue, so the timing covers the drain alone.
    await app.call_broker(lambda b: b.pause(["default"]))
    ids = []
    for start in range(0, jobs, 1000):
        ids += await noop.enqueue_many_async([(i,) for i in range(start, start + 1000)])
    began = time.perf_counter()
    await app.call_broker(lambda b: b.resume(["default"]))
    # counts() is one cheap query; waiting on 20,000 ids would measure the waiter, not the drain.
    while (await app.call_broker(lambda b: b.counts(["default"]))).total(done) < jobs:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    seconds = time.perf_counter() - began
    extends = worker._keeper.extends
    app.release.set()  # type: ignore[attr-defined]
    worker.request_stop()
    await runner
    await app.close_async()
    return jobs / seconds, extends


async def extend_rate(url: str, seconds: float = 3.0) -> float:
    app, _, long = make_app(url)
    await long.enqueue_many_async([(i,) for i in range(LONG)])
    broker = await app.open_async()
    claimed = await broker.claim(
        ClaimOptions(["long"], LONG, timedelta(seconds=30), worker_id="bench")
    )
    leases = [c.lease for c in claimed]
    info = WorkerInfo("bench", socket.gethostname(), 0, ("default",), LONG, datetime.now(UTC))
    calls, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        await broker.extend(leases, timedelta(seconds=30), heartbeat=info, progress={})
        calls += 1
    await app.close_async()
    return calls / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--broker", choices=["memory", "sqlite"], action="append")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.broker or ["sqlite", "memory"]:

            def url(name: str, kind: str = kind) -> str:
                return "memory://" if kind == "memory" else f"sqlite:///{Path(tmp) / name}.db"

            rate, _ = asyncio.run(drain(url("idle"), args.jobs, with_long=False))
            emit(args, kind, "drain, no long jobs", rate, "jobs/s")
            rate, _ = asyncio.run(drain(url("busy"), args.jobs, with_long=True))
            emit(args, kind, f"drain, {LONG} long jobs extended", rate, "jobs/s")
            emit(
                args,
                kind,
                f"extend() calls of {LONG} leases",
                asyncio.run(extend_rate(url("ext"))),
                "calls/s",
            )


if __name__ == "__main__":
    sys.exit(main())
