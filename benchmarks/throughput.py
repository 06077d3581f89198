"""Throughput and latency of errands on memory, SQLite and Redis (run by hand; prints figures).

    python benchmarks/throughput.py                # all brokers, human-readable
    python benchmarks/throughput.py --json         # one JSON object a line
    python benchmarks/throughput.py --broker sqlite --jobs 20000

Measures single enqueue/s, batch enqueue/s, drain/s per pool with one worker process, and
round trip (enqueue to result) p50/p99 with the worker in its own process. The drained jobs are
no-ops, or with `--job incr` the realistic job: one Redis INCR each (`pip install redis`).

    python benchmarks/throughput.py --broker sqlite --job incr
    BENCH_SQLITE_SYNCHRONOUS=NORMAL python benchmarks/throughput.py --broker sqlite
    python benchmarks/throughput.py --broker redis     # ERRANDS_BENCH_BROKER_REDIS, default
                                                       # redis://127.0.0.1:6379/14
    python benchmarks/throughput.py --broker sqlite --phase enqueue --phase rtt
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def emit(
    args: argparse.Namespace, broker: str, pool: str, metric: str, value: float, unit: str
) -> None:
    if args.json:
        print(
            json.dumps(
                {
                    "broker": broker,
                    "pool": pool,
                    "metric": metric,
                    "value": round(value, 2),
                    "unit": unit,
                }
            ),
            flush=True,
        )
    else:
        print(f"{broker:7} {pool:8} {metric:28} {value:12,.1f} {unit}", flush=True)


def fresh_app(url: str) -> Any:
    import importlib

    os.environ["ERRANDS_BENCH_URL"] = url
    import benchapp

    benchapp.app.close()
    module = importlib.reload(benchapp)
    return module


SYNCHRONOUS = os.environ.get("BENCH_SQLITE_SYNCHRONOUS", "FULL")


def broker_url(kind: str, tmp: Path, name: str) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "redis":
        base = os.environ.get("ERRANDS_BENCH_BROKER_REDIS", "redis://127.0.0.1:6379/14")
        return f"{base}?prefix=bench-{name}-{os.getpid()}"
    return f"sqlite:///{tmp / name}.db?synchronous={SYNCHRONOUS}"


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_enqueue(args: argparse.Namespace, kind: str, tmp: Path) -> None:
    mod = fresh_app(broker_url(kind, tmp, "enqueue"))
    single = args.single
    mod.noop_thread.enqueue(0)  # open the broker outside the timing
    seconds = timed(lambda: [mod.noop_thread.enqueue(i) for i in range(single)])
    emit(args, kind, "-", "single_enqueue", single / seconds, "jobs/s")
    emit(args, kind, "-", "single_enqueue_8_producers", concurrent_enqueues(mod, single), "jobs/s")
    batch = [(i,) for i in range(1000)]
    rounds = max(1, args.jobs // 1000)
    seconds = timed(lambda: [mod.noop_thread.enqueue_many(batch) for _ in range(rounds)])
    emit(args, kind, "-", "batch_enqueue", rounds * 1000 / seconds, "jobs/s")
    mod.app.close()


def concurrent_enqueues(mod: Any, count: int, producers: int = 8) -> float:
    """Jobs/s of `producers` threads each enqueueing its share one job at a time (their
    enqueues share commits: group commit)."""
    from concurrent.futures import ThreadPoolExecutor

    share = count // producers
    gate = threading.Barrier(producers + 1)

    def produce() -> None:
        gate.wait()
        for i in range(share):
            mod.noop_thread.enqueue(i)

    with ThreadPoolExecutor(producers) as pool:
        futures = [pool.submit(produce) for _ in range(producers)]
        gate.wait()
        start = time.perf_counter()
        for future in futures:
            future.result()
        return share * producers / (time.perf_counter() - start)


def bench_drain(args: argparse.Namespace, kind: str, pool: str, tmp: Path) -> None:
    mod = fresh_app(broker_url(kind, tmp, f"drain-{pool}"))
    tasks = {
        "noop": {"async": mod.noop_async, "thread": mod.noop_thread, "process": mod.noop_process},
        "incr": {"async": mod.incr_async, "thread": mod.incr_thread, "process": mod.incr_process},
    }
    task = tasks[args.job][pool]
    jobs = args.jobs if pool != "process" else min(args.jobs, args.process_jobs)
    for start in range(0, jobs, 1000):
        task.enqueue_many([(i,) for i in range(start, min(jobs, start + 1000))])
    broker = mod.app.broker
    calls_before = broker.calls
    # The realistic job runs at the peer harness's concurrency (async 100, threads 8).
    concurrency = {
        "noop": {"async": 200, "thread": 16, "process": os.cpu_count() or 2},
        "incr": {"async": 100, "thread": 8, "process": os.cpu_count() or 2},
    }[args.job][pool]
    ran = 0

    def drain() -> None:
        nonlocal ran
        ran = mod.app.run_until_idle(pool=pool, concurrency=concurrency)

    cpu = time.process_time()
    seconds = timed(drain)
    cpu = time.process_time() - cpu
    assert ran == jobs, f"ran {ran} of {jobs}"
    emit(args, kind, pool, f"drain_{args.job}", jobs / seconds, "jobs/s")
    # CPU of the worker process itself (all its threads; process-pool children not included).
    emit(args, kind, pool, "worker_cpu_per_job", cpu / jobs * 1e6, "µs")
    emit(args, kind, pool, "round_trips_per_job", (broker.calls - calls_before) / jobs, "calls")
    mod.app.close()


def bench_round_trip(args: argparse.Namespace, kind: str, tmp: Path) -> None:
    url = broker_url(kind, tmp, "rtt")
    if kind == "memory":
        samples = round_trip_in_process(url, args.rtt)
    else:
        samples = round_trip_subprocess(url, args.rtt)
    samples.sort()
    emit(args, kind, "async", "round_trip_p50", statistics.median(samples) * 1000, "ms")
    emit(args, kind, "async", "round_trip_p99", samples[int(len(samples) * 0.99) - 1] * 1000, "ms")


def round_trip_in_process(url: str, count: int) -> list[float]:
    import asyncio

    mod = fresh_app(url)
    worker = mod.app.worker(pool="async", concurrency=10)
    loop = mod.app.portal.loop
    running = asyncio.run_coroutine_threadsafe(worker.run(), loop)
    samples = sample_round_trips(mod, count)
    loop.call_soon_threadsafe(worker.request_stop)
    running.result(timeout=30)
    mod.app.close()
    return samples


def round_trip_subprocess(url: str, count: int) -> list[float]:
    mod = fresh_app(url)
    env = {**os.environ, "ERRANDS_BENCH_URL": url, "PYTHONPATH": str(HERE)}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "errands",
            "worker",
            "benchapp:app",
            "--pool",
            "async",
            "--concurrency",
            "10",
        ],
        env=env,
        cwd=HERE,
        stderr=subprocess.DEVNULL,
    )
    try:
        mod.noop_async.enqueue(-1).result(timeout=timedelta(seconds=30))  # worker is up
        return sample_round_trips(mod, count)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        mod.app.close()


def sample_round_trips(mod: Any, count: int) -> list[float]:
    samples = []
    for i in range(count):
        start = time.perf_counter()
        value = mod.noop_async.enqueue(i).result(timeout=timedelta(seconds=10))
        samples.append(time.perf_counter() - start)
        assert value == i
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--broker", choices=["memory", "sqlite", "redis"], action="append")
    parser.add_argument("--pool", choices=["async", "thread", "process"], action="append")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--process-jobs", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=2_000)
    parser.add_argument("--rtt", type=int, default=500)
    parser.add_argument(
        "--job",
        choices=["noop", "incr"],
        default="noop",
        help="what each drained job does: nothing, or one Redis INCR (needs redis-py and a "
        "server at ERRANDS_BENCH_REDIS, default redis://127.0.0.1:6379/15)",
    )
    parser.add_argument(
        "--phase", choices=["enqueue", "drain", "rtt"], action="append", help="default: all"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    phases = args.phase or ["enqueue", "drain", "rtt"]
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.broker or ["sqlite", "memory"]:
            if "enqueue" in phases:
                bench_enqueue(args, kind, Path(tmp))
            for pool in args.pool or ["async", "thread", "process"] if "drain" in phases else []:
                bench_drain(args, kind, pool, Path(tmp))
            if "rtt" in phases:
                bench_round_trip(args, kind, Path(tmp))


if __name__ == "__main__":
    main()
