"""A producer in another language, exactly as docs/protocol.md describes it, against a real
`errands worker` subprocess: `errands migrate`, the doc's own SQL blocks (read from the doc, so
they cannot drift), a wake-up datagram, and the result read back from the row.

The producer side (`new_job_id`, `enqueue`, `wake_workers`, `read_result`) uses only what any
language has: SQLite, JSON, UUIDs, a clock, SHA-1 and Unix sockets; nothing from errands.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from errands import codec

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
WITHIN = 30.0  # seconds
DAY_MS = 86_400_000
TERMINAL = ("completed", "failed", "cancelled")


def doc_sql(name: str) -> list[str]:
    """The statements of the SQL block marked `<!-- protocol-sql: NAME -->` in the doc."""
    block = re.search(rf"<!-- protocol-sql: {name} -->\n```sql\n(.*?)```", DOC, re.DOTALL)
    assert block is not None, f"docs/protocol.md has no SQL block {name!r}"
    statements, pending = [], ""
    for line in block[1].splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    assert not pending.strip(), f"the SQL block {name!r} ends in an unfinished statement"
    return statements


ENQUEUE_SQL = doc_sql("enqueue")
[RESULT_SQL] = doc_sql("result")
StartWorker = Callable[[], "subprocess.Popen[bytes]"]


# -- the foreign producer ----------------------------------------------------------------------


def new_job_id() -> str:
    """A UUIDv7: 48 bits of Unix milliseconds, version 7, variant 10, the rest random."""
    value = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | secrets.randbits(12) << 64
    return str(uuid.UUID(int=value | 0b10 << 62 | secrets.randbits(62)))


def enqueue(
    database: Path,
    task: str,
    args: list[Any],
    *,
    key: str | None = None,
    result_ttl_ms: int = DAY_MS,
    tamper: dict[str, str] | None = None,
) -> str:
    """One job on queue "mail", by the doc's enqueue block; returns the id of the job that
    holds it: this one, or the earlier one holding `key`. `tamper` overrides envelope fields,
    to write a row its envelope disagrees with."""
    job_id, now = new_job_id(), time.time_ns() // 1_000_000
    instant = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 1000))
    envelope = {
        "v": 1,
        "id": job_id,
        "task": task,
        "queue": "mail",
        "args": args,
        "enqueued_at": f"{instant}.{now % 1000:03d}Z",
        "max_attempts": 5,
        "result_ttl_ms": result_ttl_ms,
        "idempotency_key": key,
        **(tamper or {}),
    }
    params = {
        "id": job_id,
        "task": task,
        "queue": "mail",
        "state": "available",
        "payload": json.dumps(envelope).encode(),
        "priority": 0,
        "max_attempts": 5,
        "max_crashes": 3,
        "now": now,
        "scheduled_at": now,
        "result_ttl_ms": result_ttl_ms,
        "idempotency_key": key,
    }
    owner = job_id
    with contextlib.closing(sqlite3.connect(database, isolation_level=None, timeout=30)) as db:
        for statement in ENQUEUE_SQL:
            row = db.execute(statement, params).fetchone()
            if row is not None:  # the SELECT of the key's holder
                (owner,) = row
    return owner


def wake_directory(database: Path) -> Path:
    """Where the workers of `database` listen: named after the SHA-1 of its real path."""
    digest = hashlib.sha1(os.fsencode(os.path.realpath(database))).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"errands-wake-{digest}"


def wake_workers(database: Path) -> int:
    """Send `r` to every worker socket of `database`; returns how many took it."""
    woken = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for peer in wake_directory(database).glob("*.sock"):
            with contextlib.suppress(OSError):  # a dead worker's socket, or a full queue
                sender.sendto(b"r", str(peer))
                woken += 1
    return woken


def read_result(database: Path, job_id: str) -> sqlite3.Row:
    """The doc's result query, re-read until the job has ended."""
    deadline = time.monotonic() + WITHIN
    with contextlib.closing(sqlite3.connect(database, isolation_level=None, timeout=30)) as db:
        db.row_factory = sqlite3.Row
        while True:
            row: sqlite3.Row = db.execute(RESULT_SQL, {"id": job_id}).fetchone()
            if row["state"] in TERMINAL:
                return row
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {row['state']} after {WITHIN:g}s")
            time.sleep(0.02)  # a row written by another process; nothing to await


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A database whose schema only `errands migrate` made: no worker or Python producer yet."""
    path = tmp_path / "errands.db"
    done = subprocess.run(
        [sys.executable, "-m", "errands", "migrate", f"sqlite:///{path}"],
        capture_output=True,
        text=True,
        timeout=WITHIN,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"created the schema at {path.resolve()}")
    return path


@pytest.fixture
def start_worker(database: Path, tmp_path: Path) -> Iterator[StartWorker]:
    """Starts `errands worker tests.system.foreignapp:app` on the database; stops it after."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        with open(tmp_path / "worker.log", "wb") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [sys.executable, "-m", "errands", "worker", "tests.system.foreignapp:app"],
                env={
                    **os.environ,
                    "ERRANDS_BROKER_URL": f"sqlite:///{database}",
                    "PYTHONPATH": str(ROOT),
                },
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=WITHIN)


def wait_until_listening(database: Path, worker: subprocess.Popen[bytes]) -> None:
    """Until the idle worker has bound its socket where the doc says it is."""
    deadline = time.monotonic() + WITHIN
    while not any(wake_directory(database).glob("*.sock")):
        assert worker.poll() is None, "the worker exited"
        if time.monotonic() > deadline:
            raise TimeoutError(f"no worker socket in {wake_directory(database)}")
        time.sleep(0.02)  # a socket bound by another process; nothing to await


# -- tests -------------------------------------------------------------------------------------


def test_a_job_written_by_the_docs_sql_runs_and_its_result_reads_back(
    database: Path, start_worker: StartWorker
) -> None:
    worker = start_worker()
    wait_until_listening(database, worker)

    job_id = enqueue(database, "shop.send_receipt", [42], key="receipt-42")
    woken = wake_workers(database)
    row = read_result(database, job_id)

    assert woken == 1  # the one idle worker, found where the doc says
    assert row["state"] == "completed"
    assert row["result"] == b'"receipt for order 42 sent"'
    assert json.loads(row["result"]) == "receipt for order 42 sent"
    now = time.time_ns() // 1_000_000
    assert now < row["result_expires_at"] <= now + DAY_MS
    assert (row["fail_reason"], row["cancel_reason"]) == (None, None)
    assert json.loads(row["errors"]) == []


def test_idempotency_keys_are_per_task_and_free_again_once_the_result_expired(
    database: Path, start_worker: StartWorker
) -> None:
    first = enqueue(database, "shop.send_receipt", [42], key="receipt-42", result_ttl_ms=0)
    again = enqueue(database, "shop.send_receipt", [42], key="receipt-42", result_ttl_ms=0)
    other_task = enqueue(database, "shop.refund", [42], key="receipt-42")
    assert again == first  # held by a waiting job: nothing stored, the holder read back
    assert other_task != first  # the same key of another task is another key

    start_worker()
    assert read_result(database, first)["state"] == "completed"  # its result expired at once
    after_expiry = enqueue(database, "shop.send_receipt", [43], key="receipt-42")

    assert after_expiry not in (first, other_task)
    assert json.loads(read_result(database, after_expiry)["result"]) == (
        "receipt for order 43 sent"
    )
    with contextlib.closing(sqlite3.connect(database)) as db:
        (receipts,) = db.execute("SELECT count(*) FROM jobs WHERE task = 'shop.send_receipt'")
    assert receipts == (2,)


@pytest.mark.parametrize(
    "tamper",
    [{"id": "01b8dd58-e200-7000-b709-5a44192f2630"}, {"task": "shop.refund"}],
    ids=["id", "task"],
)
def test_a_row_its_envelope_disagrees_with_is_dead_lettered_and_the_worker_goes_on(
    database: Path, start_worker: StartWorker, tamper: dict[str, str]
) -> None:
    worker = start_worker()

    bad = enqueue(database, "shop.send_receipt", [42], tamper=tamper)
    row = read_result(database, bad)

    assert (row["state"], row["fail_reason"]) == ("failed", "malformed")
    [error] = json.loads(row["errors"])
    assert (error["kind"], error["type"]) == ("malformed", "MalformedMessage")
    assert error["message"].startswith("malformed message (mismatch): ")
    assert row["result"] is None
    good = enqueue(database, "shop.send_receipt", [43])
    assert json.loads(read_result(database, good)["result"]) == "receipt for order 43 sent"
    assert worker.poll() is None
    worker.terminate()
    assert worker.wait(timeout=WITHIN) == 0


# -- the doc's tag table -----------------------------------------------------------------------

#: What each example of the doc's tag table stands for.
TAG_EXAMPLES: dict[str, Any] = {
    "datetime": datetime(2030, 1, 31, 12, tzinfo=UTC),
    "date": date(2030, 1, 31),
    "time": clock_time(23, 59, 59, 999999),
    "timedelta": timedelta(days=2, hours=3, microseconds=5),
    "uuid": uuid.UUID("01b8dd58-e200-7000-b709-5a44192f2630"),
    "decimal": Decimal("19.90"),
    "bytes": b"\x00\xffhi",
    "tuple": (1, "a"),
    "set": {3},
    "float": math.inf,
    "dict": {"__errands__": "mine"},
}


def doc_tag_table() -> dict[str, str]:
    """Tag name -> the JSON of its example, from the doc's table."""
    section = DOC.split("## Tagged values", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `(\w+)` \|.*\| `(\{.*\})` \|$", section, re.MULTILINE))


def test_the_doc_has_one_example_for_each_tag() -> None:
    assert sorted(doc_tag_table()) == sorted(TAG_EXAMPLES)


@pytest.mark.parametrize("tag", sorted(TAG_EXAMPLES))
def test_each_tag_example_in_the_doc_is_what_errands_writes_and_reads(tag: str) -> None:
    wire, value = doc_tag_table()[tag], TAG_EXAMPLES[tag]

    assert codec.loads(wire.encode()) == value
    assert json.loads(codec.dumps(value)) == json.loads(wire)
