"""T6, beyond the 12 kinds: rows another writer could put in the SQLite file with the wrong
column types or hostile field values. The worker must isolate each one and keep running.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

import errands
from tests.system.faults.conftest import Processes, Store, wait_until, worker_alive

pytestmark = pytest.mark.brokers(
    "sqlite", reason="writes rows of the wrong type into the SQLite file"
)

ENVELOPE = b'{"v":1,"id":"hostile","task":"noop","args":[1]%s}'
CASES = [
    pytest.param(
        "CAST(? AS TEXT)",
        b'{"v":1,"id":"hostile","task":"noop","args":["\xff"]}',
        id="text_invalid_utf8",
    ),
    pytest.param(
        "?",
        5,
        id="integer_payload",
    ),
    pytest.param(
        "?",
        ENVELOPE % b',"timeout_ms":9223372036854775807',
        id="timeout_ms_overflow",
    ),
]


@pytest.mark.parametrize(("value_sql", "payload"), CASES)
def test_hostile_row_is_dead_lettered_and_the_worker_lives(
    procs: Processes, store: Store, producer: errands.App, value_sql: str, payload: object
) -> None:
    worker = procs.worker("--pool", "thread", "--concurrency", "2", "--queues", "default")
    now = int(time.time() * 1000)
    with store.connect() as connection:
        connection.execute(
            "INSERT INTO jobs (id, task, queue, state, payload, max_attempts, max_crashes, "
            f"enqueued_at, scheduled_at, result_ttl_ms) VALUES ('hostile', 'hostile', 'default', "
            f"'available', {value_sql}, 3, 3, ?, ?, 86400000)",
            (payload, now, now),
        )

    def dead_lettered() -> bool:
        worker_alive(procs, worker)
        return store.scalar("SELECT state FROM jobs WHERE id = 'hostile'") == "failed"

    # Other hostile rows are dead-lettered within a second of their claim (idle wait 1 s).
    wait_until(dead_lettered, within=timedelta(seconds=5), what="the row dead-lettered")
    assert store.scalar("SELECT fail_reason FROM jobs WHERE id = 'hostile'") == "malformed"
    worker_alive(procs, worker)
