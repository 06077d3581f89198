"""Bytes of Redis memory one queued job costs (run by hand; prints one line).

    python benchmarks/redis_memory.py [N] [URL]    # default 100000, redis://127.0.0.1:6379/14

Enqueues N waiting jobs of a typical task call (`send_email(to, subject)`, an envelope of about
150 bytes) through the public API and reads `used_memory` before and after: the figure covers
the job hash and every index entry (ready set, id sets, counts). The keys are deleted after.
"""

from __future__ import annotations

import sys

import redis

import errands
from errands.brokers.redis.keys import Keys
from errands.brokers.redis.url import parse_url

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
URL = sys.argv[2] if len(sys.argv) > 2 else "redis://127.0.0.1:6379/14?prefix=memory-bench"

app = errands.App(URL)


@app.task(queue="mail")
def send_email(to: str, subject: str) -> None:
    """A typical job: two short strings."""


def main() -> None:
    parsed = parse_url(URL)
    client = redis.Redis.from_url(parsed.connect)
    keys = Keys(parsed.prefix)
    app.enqueue_many([send_email.call("someone@example.com", "Welcome")])  # scripts, layout
    before = int(client.info("memory")["used_memory"])
    for start in range(0, N, 1000):
        app.enqueue_many(
            [send_email.call(f"user{i}@example.com", "Welcome") for i in range(start, start + 1000)]
        )
    after = int(client.info("memory")["used_memory"])
    one = app.enqueue_many([send_email.call("someone@example.com", "Welcome")])[0]
    job_hash = client.memory_usage(keys.job(one.id)) or 0
    payload = len(client.hget(keys.job(one.id), "payload") or b"")
    print(
        f"{N:,} queued jobs: {(after - before) / N:,.0f} bytes each in used_memory "
        f"(job hash alone {job_hash} bytes by MEMORY USAGE, payload {payload} bytes); "
        f"1 GB holds about {1e9 / ((after - before) / N):,.0f} queued jobs"
    )
    app.close()
    doomed = list(client.scan_iter(match=keys.pattern(), count=10_000))
    for start in range(0, len(doomed), 10_000):
        client.delete(*doomed[start : start + 10_000])


if __name__ == "__main__":
    main()
