"""Floors: what any Python queue can reach on this machine, measured without a queue (run by hand).

    python benchmarks/floors.py                 # all three, human-readable
    python benchmarks/floors.py --json job      # one floor, one JSON object a line

The peer harness's targets are ratios against other queues. These are the ceilings under
them, with no queue code at all, so a figure of errands can be read against what is possible:

- `job`: the harness's realistic async job alone, an awaited redis-py `INCR` (uvloop, 100 at
  once, one process), and the blocking one from 8 threads. A queue adds its own cost on top,
  so no one-process worker drains these jobs faster than this.
- `insert`: a durable (`synchronous=FULL`) SQLite batch insert of 1,000 rows at a time into a
  table with only what a queue cannot do without (id, queue, priority, due time, payload; one
  claim index), the arguments encoded with msgspec: the least a batch enqueue costs.
- `roundtrip`: enqueue to result across two processes on one SQLite file in WAL, durable as
  errands is: the producer's insert commits with a sync, the consumer (asleep in `recv`) is
  woken by a Unix datagram, claims and finishes in two transactions (the finish synced),
  and wakes the producer (asleep in `recv`) by a datagram; it reads the result. No threads,
  no event loop: the least a durable SQLite round trip costs from Python.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
KEY = "errands:floors:counter"
SCHEMA = """
CREATE TABLE jobs (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, priority INTEGER NOT NULL,
                   due_ms INTEGER NOT NULL, state INTEGER NOT NULL DEFAULT 0, payload BLOB NOT NULL,
                   result BLOB);
CREATE INDEX jobs_claim ON jobs (queue, state, priority DESC, due_ms, id);
"""
INSERT = "INSERT INTO jobs (queue, priority, due_ms, payload) VALUES (?, ?, ?, ?)"


def emit(args: argparse.Namespace, floor: str, metric: str, value: float, unit: str) -> None:
    if args.json:
        print(
            json.dumps({"floor": floor, "metric": metric, "value": round(value, 3), "unit": unit})
        )
    else:
        print(f"{floor:10} {metric:34} {value:>12,.1f} {unit}")


def job_floor(args: argparse.Namespace) -> None:
    import redis
    import redis.asyncio as aioredis
    import uvloop

    n = args.n

    async def awaited() -> tuple[float, float]:
        client = aioredis.Redis.from_url(REDIS_URL)
        await client.incr(KEY)  # connect before timing
        left = iter(range(n))

        async def one_lane() -> None:
            for _ in left:
                await client.incr(KEY)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one_lane() for _ in range(100)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        await client.aclose()
        return n / wall, cpu / n * 1e6

    for _ in range(args.repeat):
        rate, cpu_us = uvloop.run(awaited())
        emit(args, "job", "awaited INCR, 100 at once", rate, "jobs/s")
        emit(args, "job", "  CPU per awaited INCR", cpu_us, "us")

    blocking = redis.Redis.from_url(REDIS_URL)
    blocking.incr(KEY)
    for _ in range(args.repeat):
        threads = [threading.Thread(target=_incr_all, args=(blocking, n // 8)) for _ in range(8)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rate = n // 8 * 8 / (time.perf_counter() - started)
        emit(args, "job", "blocking INCR, 8 threads", rate, "jobs/s")
    blocking.delete(KEY)


def _incr_all(client: Any, n: int) -> None:
    for _ in range(n):
        client.incr(KEY)


def insert_floor(args: argparse.Namespace) -> None:
    encode = msgspec.json.encode
    with tempfile.TemporaryDirectory() as directory:
        db = _connect(Path(directory) / "floor.db")
        db.executescript(SCHEMA)
        for _ in range(args.repeat):
            started = time.perf_counter()
            for _ in range(args.n // 1000):
                now_ms = time.time_ns() // 1_000_000
                rows = [("default", 0, now_ms, encode(["add", [1, 2], {}])) for _ in range(1000)]
                db.execute("BEGIN IMMEDIATE")
                db.executemany(INSERT, rows)
                db.execute("COMMIT")
            rate = args.n // 1000 * 1000 / (time.perf_counter() - started)
            emit(args, "insert", "durable batches of 1,000", rate, "rows/s")
        db.close()


CONSUMER = r"""
import os, socket, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA synchronous = FULL")
inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
inbox.bind(sys.argv[2])
print("ready", flush=True)
while inbox.recv(16) != b"stop":
    db.execute("PRAGMA synchronous = NORMAL")  # a lost claim only means a re-claim
    db.execute("BEGIN IMMEDIATE")
    claimed = db.execute(
        "UPDATE jobs SET state = 1 WHERE id IN (SELECT id FROM jobs WHERE queue = 'q' AND "
        "state = 0 ORDER BY priority DESC, due_ms, id LIMIT 10) RETURNING id, payload"
    ).fetchall()
    db.execute("COMMIT")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("BEGIN IMMEDIATE")
    db.executemany("UPDATE jobs SET state = 2, result = ? WHERE id = ?",
                   [(b"3", job_id) for job_id, _ in claimed])
    db.execute("COMMIT")
    inbox.sendto(b"d", sys.argv[3])
"""


def roundtrip_floor(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        db = _connect(path / "floor.db")
        db.executescript(SCHEMA)
        consumer_address, producer_address = str(path / "c.sock"), str(path / "p.sock")
        inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        inbox.bind(producer_address)
        consumer = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CONSUMER,
                str(path / "floor.db"),
                consumer_address,
                producer_address,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert consumer.stdout is not None
        assert consumer.stdout.readline().strip() == "ready"
        payload = msgspec.json.encode(["add", [1, 2], {}])
        samples: list[float] = []
        for i in range(args.n_rtt + 20):
            started = time.perf_counter()
            db.execute("BEGIN IMMEDIATE")
            (job_id,) = db.execute(INSERT + " RETURNING id", ("q", 0, 0, payload)).fetchone()
            db.execute("COMMIT")
            inbox.sendto(b"r", consumer_address)
            inbox.recv(16)
            (result,) = db.execute("SELECT result FROM jobs WHERE id = ?", (job_id,)).fetchone()
            assert result == b"3"
            if i >= 20:  # warm-up
                samples.append(time.perf_counter() - started)
        inbox.sendto(b"stop", consumer_address)
        consumer.wait(10)
        db.close()
    samples.sort()
    emit(args, "roundtrip", "p50, durable", statistics.median(samples) * 1000, "ms")
    emit(args, "roundtrip", "p99, durable", samples[int(0.99 * len(samples))] * 1000, "ms")


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    return db


FLOORS = {"job": job_floor, "insert": insert_floor, "roundtrip": roundtrip_floor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("floors", nargs="*", help=f"any of {', '.join(FLOORS)} (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON object a line")
    parser.add_argument("--n", type=int, default=20_000, help="jobs or rows per measurement")
    parser.add_argument("--n-rtt", type=int, default=500, help="round trips sampled")
    parser.add_argument("--repeat", type=int, default=3, help="measurements of each floor")
    args = parser.parse_args()
    for name in args.floors:
        if name not in FLOORS:
            parser.error(f"unknown floor {name!r}: choose from {', '.join(FLOORS)}")
    for name in args.floors or FLOORS:
        FLOORS[name](args)


if __name__ == "__main__":
    main()
