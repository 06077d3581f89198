"""What a limit check costs in the claim: drain/s of no-op jobs with no limit, and with limits
so loose they never hold a job back, so only the check itself is measured (run by hand).

    flock /tmp/bench.lock python benchmarks/limits.py                  # SQLite, 20,000 jobs
    flock /tmp/bench.lock python benchmarks/limits.py --jobs 5000 --broker redis
    flock /tmp/bench.lock python benchmarks/limits.py --broker postgres

Each case enqueues the jobs in batches of 1,000, then times one in-process worker (async pool,
concurrency 16) draining them; the cases take turns, `--repeat` rounds, and the median of each
is printed, with the CPU time of the process per job (the machine is shared: wall-clock rates
of a single run are noise). Cases: `none`; `rate` (1,000,000/s, one task key); `keyed-rate`
(the same rate per key, over 100 keys); `concurrency` (a cap of 10,000); `queue` (a queue
limit of 1,000,000/s). Brokers: ERRANDS_BENCH_REDIS_URL (default redis://127.0.0.1:6379/14),
ERRANDS_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import errands

HUGE_RATE = "1000000/s"


def url_of(broker: str, tmp: Path, case: str) -> str:
    """Storage of its own for one case."""
    tag = f"bench_limits_{case.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
    if broker == "redis":
        base = os.environ.get("ERRANDS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
        return f"{base}?prefix={tag}"
    if broker == "postgres":
        base = os.environ.get(
            "ERRANDS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        )
        return f"{base}?schema={tag}"
    return f"sqlite:///{tmp / tag}.db"


def declare(app: errands.App, case: str) -> Callable[..., Any]:
    """The no-op task of `case` on `app`."""
    options: dict[str, Any] = {
        "none": {},
        "rate": {"rate_limit": HUGE_RATE},
        "keyed-rate": {"rate_limit": HUGE_RATE, "limit_key": "key"},
        "concurrency": {"concurrency_limit": 10_000},
        "queue": {},
    }[case]
    if case == "queue":
        app.queue_limit("bench", rate_limit=HUGE_RATE)

    @app.task(name="noop", queue="bench", **options)
    async def noop(i: int, key: int) -> int:
        return i

    return noop


def drain_rate(broker: str, case: str, jobs: int, tmp: Path) -> tuple[float, float]:
    """Jobs drained per second in `case`, and CPU µs of this process per job (every thread;
    less disturbed than the wall clock by other work on the machine)."""
    app = errands.App(url_of(broker, tmp, case))
    try:
        noop = declare(app, case)
        for start in range(0, jobs, 1000):
            app.enqueue_many([noop.call(i, i % 100) for i in range(start, min(jobs, start + 1000))])
        began, cpu = time.perf_counter(), time.process_time()
        ran = 0
        while ran < jobs:  # a claim the gate left empty ends a run early; go on until all ran
            done = app.run_until_idle(queues=["bench"], concurrency=16)
            if not done:
                raise RuntimeError(f"{case}: stuck after {ran} of {jobs} jobs")
            ran += done
        used = time.process_time() - cpu
        return jobs / (time.perf_counter() - began), used / jobs * 1e6
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--broker", choices=["sqlite", "redis", "postgres"], default="sqlite")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--cases", default="none,rate,keyed-rate,concurrency,queue", help="comma-separated"
    )
    args = parser.parse_args()
    cases = args.cases.split(",")
    rates: dict[str, list[float]] = {case: [] for case in cases}
    cpus: dict[str, list[float]] = {case: [] for case in cases}
    with tempfile.TemporaryDirectory() as directory:
        drain_rate(args.broker, "none", 500, Path(directory))  # warm up imports and caches
        for _ in range(args.repeat):
            for case in cases:
                rate, cpu = drain_rate(args.broker, case, args.jobs, Path(directory))
                rates[case].append(rate)
                cpus[case].append(cpu)
    base = statistics.median(cpus[cases[0]])
    for case in cases:
        rate, cpu = statistics.median(rates[case]), statistics.median(cpus[case])
        runs = " ".join(f"{one:,.0f}" for one in rates[case])
        print(
            f"{args.broker:8} {case:12} {args.jobs:>7,} jobs  {rate:7,.0f} drained/s "
            f"(median of {runs})  {cpu:6.0f} CPU µs/job ({cpu / base:6.1%} of {cases[0]})",
            flush=True,
        )


if __name__ == "__main__":
    main()
