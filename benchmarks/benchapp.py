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


# -- the realistic job: one Redis INCR each (`throughput.py --job incr`) ---------------------
# A no-op job flatters a queue: these do one real round trip to a server, as the peer harness's
# jobs do. The clients are made on first use, so the no-op benchmarks need no Redis.

REDIS_URL = os.environ.get("ERRANDS_BENCH_REDIS", "redis://127.0.0.1:6379/15")
COUNTER = "errands-bench-counter"
_clients: dict[str, object] = {}


def _sync_client() -> object:
    if "sync" not in _clients:
        import redis

        _clients["sync"] = redis.Redis.from_url(REDIS_URL)
    return _clients["sync"]


def _async_client() -> object:
    if "async" not in _clients:
        import redis.asyncio

        _clients["async"] = redis.asyncio.Redis.from_url(REDIS_URL)
    return _clients["async"]


@app.task(name="incr_async")
async def incr_async(i: int) -> int:
    await _async_client().incr(COUNTER)  # type: ignore[attr-defined]
    return i


@app.task(name="incr_thread")
def incr_thread(i: int) -> int:
    _sync_client().incr(COUNTER)  # type: ignore[attr-defined]
    return i


@app.task(name="incr_process", pool="process")
def incr_process(i: int) -> int:
    _sync_client().incr(COUNTER)  # type: ignore[attr-defined]
    return i
