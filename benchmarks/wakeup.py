"""Cross-process wake-up latency of SQLiteBroker (run by hand; prints one line).

    python benchmarks/wakeup.py [N] [FULL|NORMAL]

A child process waits in wait_ready; the parent enqueues one job at a time and measures the
enqueue call (and its return) to the child being awake. Also the idle child's CPU.
"""

import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import asyncio, sys, time
from datetime import timedelta
from errands.brokers.contract import ClaimOptions
from errands.brokers.sqlite.broker import SQLiteBroker
async def main():
    b = SQLiteBroker(sys.argv[1], synchronous=sys.argv[2])
    await b.open()
    print("ready", flush=True)
    while True:
        await b.wait_ready(["q"], timedelta(seconds=30))
        t = time.monotonic()
        got = await b.claim(ClaimOptions(["q"], 100, timedelta(seconds=30), worker_id="child"))
        if any(c.job.task == "stop" for c in got):
            break
        if got:
            print(f"woke {t!r}", flush=True)
    await b.close()
asyncio.run(main())
"""


async def main() -> None:
    import psutil

    from errands.brokers.sqlite.broker import SQLiteBroker
    from errands.job import JobSpec, new_job_id

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    sync = sys.argv[2] if len(sys.argv) > 2 else "FULL"
    path = Path(tempfile.mkdtemp()) / "wake.db"
    parent = SQLiteBroker(path, synchronous=sync)
    await parent.open()
    child = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
        [sys.executable, "-c", CHILD, str(path), sync], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    await asyncio.sleep(0.5)
    proc = psutil.Process(child.pid)
    cpu0 = sum(proc.cpu_times()[:2])
    t_idle = time.monotonic()
    await asyncio.sleep(5)
    idle_cpu = (sum(proc.cpu_times()[:2]) - cpu0) / (time.monotonic() - t_idle)
    from_return, from_call = [], []
    for _ in range(n):
        await asyncio.sleep(random.uniform(0.05, 0.15))
        t0 = time.monotonic()
        await parent.enqueue_many([JobSpec(new_job_id(), "noop", "q", b"{}")])
        t1 = time.monotonic()
        line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
        woke = float(line.split()[1])
        from_call.append((woke - t0) * 1000)
        from_return.append((woke - t1) * 1000)
    await parent.enqueue_many([JobSpec(new_job_id(), "stop", "q", b"{}")])
    child.wait(10)
    await parent.close()

    def q(xs: list[float], p: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]

    call_median, return_median = statistics.median(from_call), statistics.median(from_return)
    print(
        f"sync={sync} n={n}: enqueue call->child awake median {call_median:.2f} ms, "
        f"p99 {q(from_call, 0.99):.2f} ms, max {max(from_call):.2f} ms; "
        f"enqueue returned->awake median {return_median:.2f} ms, "
        f"p99 {q(from_return, 0.99):.2f} ms; idle child CPU {idle_cpu * 100:.3f}%"
    )


asyncio.run(main())
