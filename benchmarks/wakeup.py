"""Cross-process wake-up latency of a broker (run by hand; prints two lines).

    python benchmarks/wakeup.py [N] [URL]     # URL default: a SQLite file in a temp dir
    python benchmarks/wakeup.py 200 'redis://127.0.0.1:6379/14?prefix=wake'
    python benchmarks/wakeup.py 200 'sqlite:////tmp/wake.db?synchronous=NORMAL'

A child process waits in wait_ready and claims; the parent enqueues one job at a time and
measures (1) a job runnable now: from the enqueue call, and from its return, to the child being
awake with the job claimed; (2) a job due 50 ms after its enqueue: from its due time to the
child holding it. Also the idle child's CPU.
"""

import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

CHILD = r"""
import asyncio, sys, time
from datetime import timedelta
from errands.brokers import from_url
from errands.brokers.contract import ClaimOptions
async def main():
    b = from_url(sys.argv[1])
    await b.open()
    print("ready", flush=True)
    while True:
        await b.wait_ready(["q"], timedelta(seconds=30))
        got = await b.claim(ClaimOptions(["q"], 100, timedelta(seconds=30), worker_id="child"))
        t = time.time()
        if any(c.job.task == "stop" for c in got):
            break
        if got:
            print(f"woke {t!r}", flush=True)
    await b.close()
asyncio.run(main())
"""
DUE_IN = timedelta(milliseconds=50)


async def main() -> None:
    import psutil

    from errands.brokers import from_url
    from errands.job import JobSpec, new_job_id

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    url = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{Path(tempfile.mkdtemp())}/wake.db"
    parent = from_url(url)
    await parent.open()
    child = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
        [sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    await asyncio.sleep(0.5)
    proc = psutil.Process(child.pid)
    cpu0 = sum(proc.cpu_times()[:2])
    t_idle = time.monotonic()
    await asyncio.sleep(5)
    idle_cpu = (sum(proc.cpu_times()[:2]) - cpu0) / (time.monotonic() - t_idle)

    async def awake() -> float:
        assert child.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
        return float(line.split()[1])

    from_return, from_call, from_due = [], [], []
    for _ in range(n):
        await asyncio.sleep(random.uniform(0.05, 0.15))
        t0 = time.time()
        await parent.enqueue_many([JobSpec(new_job_id(), "noop", "q", b"{}")])
        t1 = time.time()
        woke = await awake()
        from_call.append((woke - t0) * 1000)
        from_return.append((woke - t1) * 1000)
    for _ in range(n):
        await asyncio.sleep(random.uniform(0.05, 0.15))
        due = datetime.now(UTC) + DUE_IN
        await parent.enqueue_many([JobSpec(new_job_id(), "noop", "q", b"{}", scheduled_at=due)])
        from_due.append((await awake() - due.timestamp()) * 1000)
    await parent.enqueue_many([JobSpec(new_job_id(), "stop", "q", b"{}")])
    child.wait(10)
    await parent.close()

    def q(xs: list[float], p: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]

    print(
        f"{parent.location} n={n}: runnable now: enqueue call->child holds it median "
        f"{statistics.median(from_call):.2f} ms, p99 {q(from_call, 0.99):.2f} ms, max "
        f"{max(from_call):.2f} ms; enqueue returned->held median "
        f"{statistics.median(from_return):.2f} ms; idle child CPU {idle_cpu * 100:.3f}%"
    )
    print(
        f"due {DUE_IN.total_seconds() * 1000:.0f} ms after enqueue: due time->child holds it "
        f"median {statistics.median(from_due):.2f} ms, p99 {q(from_due, 0.99):.2f} ms, "
        f"max {max(from_due):.2f} ms"
    )


asyncio.run(main())
