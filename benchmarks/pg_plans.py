"""The PostgreSQL claim's plan and cost with 1,000 and 1,000,000 jobs waiting in the claimed
queue itself (run by hand; prints figures and plans):

    python benchmarks/pg_plans.py [BASE_URL]     # default postgresql://postgres@127.0.0.1:5432/test

For each size: a fresh schema filled with batch enqueues, `VACUUM ANALYZE` (as autovacuum would
have done), then `EXPLAIN (ANALYZE, BUFFERS)` of the broker's own claim statement for 100 jobs
inside a transaction that is rolled back, and the time of 20 claims of 100 jobs each. The schema
is dropped at the end.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta

import psycopg

import errands
from errands.brokers.contract import ClaimOptions
from errands.brokers.postgres.sql import Q
from errands.brokers.postgres.url import parse_url

BASE = sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/test"


def measure(size: int) -> None:
    url = f"{BASE}?schema=plans_{size}"
    app = errands.App(url)

    @app.task(name="noop")
    async def noop(i: int) -> int:
        return i

    began = time.perf_counter()
    for start in range(0, size, 5000):
        noop.enqueue_many([(i,) for i in range(start, min(size, start + 5000))])
    filled = time.perf_counter() - began
    conninfo = parse_url(url).conninfo
    schema = parse_url(url).schema
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'VACUUM ANALYZE "{schema}".jobs')
        conn.execute(f'SET search_path = "{schema}"')
        conn.autocommit = False
        params = {
            "queues": ["default"],
            "n": 100,
            "lease": timedelta(seconds=30),
            "worker_id": "plan",
            "promote_limit": 1000,
            "now": "now",
            "ready": parse_url(url).ready_channel,
        }
        plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + Q["claim"], params).fetchall()
        conn.rollback()

    async def claims() -> float:
        broker = await app.open_async()
        t = time.perf_counter()
        for k in range(20):
            await broker.claim(ClaimOptions(["default"], 100, timedelta(seconds=30), f"w{k}"))
        return (time.perf_counter() - t) / 20

    per_claim = app.portal.call(claims)
    print(f"== {size:,} jobs waiting in the claimed queue (filled at {size / filled:,.0f}/s)")
    print(f"claim of 100: {per_claim * 1000:.2f} ms each (20 claims through the broker)")
    for (line,) in plan:
        print("   ", line)
    app.close()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    for size in (1_000, 1_000_000):
        measure(size)
