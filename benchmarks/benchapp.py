"""No-op tasks for the benchmarks; importable by process-pool children and worker subprocesses."""

from __future__ import annotations

import os

import errands

app = errands.App(os.environ.get("ERRANDS_BENCH_URL", "memory://"))


@app.task(name="noop_async")
async def noop_async(i: int) -> int:
    return i


@app.task(name="noop_thread")
def noop_thread(i: int) -> int:
    return i


@app.task(name="noop_process", pool="process")
def noop_process(i: int) -> int:
    return i
