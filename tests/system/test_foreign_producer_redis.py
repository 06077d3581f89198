"""A producer in another language on Redis, as docs/protocol.md describes it: the printed
enqueue script called with EVAL and plain arguments, a real `errands worker` subprocess runs
the job, and the result is read back with HMGET and GET. Nothing of errands is used on the
producer side but the script text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from errands.brokers.redis.keys import Keys
from errands.brokers.redis.url import parse_url

ROOT = Path(__file__).resolve().parents[2]
WITHIN = 30.0

pytestmark = pytest.mark.brokers("redis", reason="calls the Redis enqueue script directly")


def printed_script() -> str:
    """The script as the doc's command prints it."""
    command = "from errands.brokers.redis.scripts import source; print(source('enqueue'))"
    return subprocess.run(
        [sys.executable, "-c", command], capture_output=True, text=True, check=True
    ).stdout


def test_a_job_enqueued_with_eval_runs_and_its_result_reads_back(
    broker_url: str, tmp_path: Path
) -> None:
    prefix = parse_url(broker_url).prefix
    client = redis.Redis.from_url(parse_url(broker_url).connect)
    tag = "{" + prefix + "}"
    job_id = str(uuid.uuid4())
    envelope = {"v": 1, "id": job_id, "task": "shop.send_receipt", "args": [42]}
    args = [job_id, "shop.send_receipt", "mail", json.dumps(envelope), 0, "", 5, 3, 86_400_000, ""]
    worker = subprocess.Popen(
        [sys.executable, "-m", "errands", "worker", "tests.system.foreignapp:app"],
        env={**os.environ, "ERRANDS_BROKER_URL": broker_url, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=(tmp_path / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        reply = client.eval(printed_script(), 1, f"{tag}:meta", tag, "", *args)
        again = client.eval(printed_script(), 1, f"{tag}:meta", tag, "", *args)
        deadline = time.monotonic() + WITHIN
        while client.hget(Keys(prefix).job(job_id), "state") != b"completed":
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.05)  # another process's write; the doc's reader polls or subscribes
        result = client.get(f"{tag}:result:{job_id}")
    finally:
        worker.kill()
        worker.wait(10)
        client.close()

    assert reply == [job_id.encode(), 0]
    assert again == [job_id.encode(), 1]  # a resend is a duplicate, never a second job
    assert result == b'"receipt for order 42 sent"'  # the return value as JSON
