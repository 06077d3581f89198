"""How late a delayed job starts on an idle worker (run by hand; prints one line).

    python benchmarks/eta_lateness.py [N] [URL]     # URL default: memory://
    python benchmarks/eta_lateness.py 200 'sqlite:////tmp/eta.db'
    python benchmarks/eta_lateness.py 200 'redis://127.0.0.1:6379/14?prefix=eta'
    python benchmarks/eta_lateness.py 200 'postgresql://postgres@127.0.0.1:5432/test?schema=eta'

A worker of this process (the async pool, idle) runs a no-op task; N jobs are enqueued one at a
time with an ETA 100-400 ms ahead, and each one's lateness is its `started_at` (the broker's
clock at the claim) minus its ETA. `benchmarks/wakeup.py` measures the broker alone, across
processes.
"""

import asyncio
import statistics
import sys
from datetime import UTC, datetime, timedelta

import errands


async def main(n: int, url: str) -> None:
    app = errands.App(url)
    app.portal.adopt(asyncio.get_running_loop())

    @app.task(name="eta_noop")
    async def noop() -> None:
        """Nothing: only the start is measured."""

    worker = app.worker()
    running = asyncio.ensure_future(worker.run())
    late_ms: list[float] = []
    try:
        for i in range(n):
            eta = datetime.now(UTC) + timedelta(milliseconds=100 + (i * 37) % 300)
            handle = await noop.options(eta=eta).enqueue_async()
            await handle.result_async(timeout=10)
            job = await handle.refresh_async()
            assert job.started_at is not None
            late_ms.append((job.started_at - eta).total_seconds() * 1000)
    finally:
        worker.request_stop()
        await running
        await app.close_async()
    late_ms.sort()
    p99 = late_ms[min(len(late_ms) - 1, int(len(late_ms) * 0.99))]
    print(
        f"{app.broker.location} n={n}: start after the ETA median {statistics.median(late_ms):.2f}"
        f" ms, p99 {p99:.2f} ms, max {late_ms[-1]:.2f} ms, min {late_ms[0]:.2f} ms"
    )


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    asyncio.run(main(count, sys.argv[2] if len(sys.argv) > 2 else "memory://"))
