"""T6 (G5): malformed and poison payloads written straight into the SQLite file, among valid
jobs, are dead-lettered with a reason and their raw bytes; no worker crashes; the valid jobs
complete; the pickle payload is never unpickled."""

from __future__ import annotations

import json
import pickle
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

import errands
from errands.job import FailReason
from errands.worker.execution import RAW_KEEP
from tests.system.faults import faultapp
from tests.system.faults.conftest import Processes, Store, wait_until, worker_alive
from tests.system.faults.hostile import KINDS, Hostile, generate, pickle_payload

pytestmark = pytest.mark.brokers("sqlite", reason="writes malformed rows into the SQLite file")

INSERT = """
INSERT INTO jobs (id, task, queue, state, payload, priority, max_attempts, max_crashes,
                  enqueued_at, scheduled_at, result_ttl_ms)
VALUES (?, ?, 'default', 'available', ?, 0, 3, 3, ?, ?, 86400000)
"""
HOSTILE_ROWS = "id LIKE 'hostile-%'"


def as_stored(i: int, raw: bytes) -> tuple[str, str, bytes]:
    """Row i's id, task and payload: a row agrees with its envelope on id and task where the
    envelope has them, so each kind is dead-lettered for its own fault, not for a mismatch."""
    job_id = f"hostile-{i:05d}"
    payload = raw.replace(b'"id":"hostile"', f'"id":"{job_id}"'.encode(), 1)
    try:
        task = json.loads(payload)["task"]
    except (ValueError, TypeError, KeyError, RecursionError):
        task = "hostile"
    return job_id, task if isinstance(task, str) else "hostile", payload


def test_quick_120_malformed_among_1000_valid(
    procs: Processes, store: Store, producer: errands.App, tmp_path: Path
) -> None:
    check_malformed(procs, store, producer, tmp_path, valid=1000, per_kind=10, workers=1)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_full_1000_malformed_among_10000_valid(
    procs: Processes, store: Store, producer: errands.App, tmp_path: Path
) -> None:
    # 1,000 of 12 kinds: 84 of the first four kinds, 83 of the others.
    check_malformed(procs, store, producer, tmp_path, valid=10_000, per_kind=(84, 83), workers=2)


def check_malformed(
    procs: Processes,
    store: Store,
    producer: errands.App,
    tmp_path: Path,
    *,
    valid: int,
    per_kind: int | tuple[int, int],
    workers: int,
) -> None:
    started = time.monotonic()
    sentinel = tmp_path / "sentinel"
    control = tmp_path / "control"
    pickle.loads(pickle_payload(control, 2))  # the payload kind is live: unpickling writes a file
    assert control.exists()

    hostile = hostile_payloads(sentinel, per_kind)
    running = [
        procs.worker("--pool", "thread", "--concurrency", "8", "--queues", "default")
        for _ in range(workers)
    ]
    pids = [w.pid for w in running]
    valid_ids = write_interleaved(store, producer, hostile, valid, chunks=20)
    written = time.monotonic()

    def settled() -> bool:
        assert not sentinel.exists(), "a pickle payload was unpickled"
        for worker in running:
            worker_alive(procs, worker)
        return store.unfinished() == 0

    wait_until(settled, within=timedelta(seconds=120 if valid > 1000 else 60), what="all terminal")
    drained = time.monotonic()

    assert not sentinel.exists()
    for worker, pid in zip(running, pids, strict=True):
        worker_alive(procs, worker)
        assert worker.pid == pid
        assert "never retrieved" not in procs.log(worker)
    assert store.scalar("SELECT count(DISTINCT id) FROM workers") == workers  # no re-exec
    assert store.scalar("SELECT count(*) FROM jobs WHERE crashes > 0") == 0

    wrong = check_dead_letters(store, hostile)
    assert wrong == [], f"{len(wrong)} of {len(hostile)} not dead-lettered as expected: {wrong[:5]}"
    completed = store.scalar(
        f"SELECT count(*) FROM jobs WHERE NOT {HOSTILE_ROWS} AND state = 'completed'"
    )
    assert completed == len(valid_ids) == valid

    reasons = Counter(
        r[0] for r in store.query(f"SELECT fail_reason FROM jobs WHERE {HOSTILE_ROWS}")
    )
    print(
        f"\nT6 {len(hostile)} hostile of {len(KINDS)} kinds among {valid} valid, "
        f"{workers} worker(s): written in {written - started:.1f}s, all terminal "
        f"{drained - written:.1f}s later; dead-lettered {len(hostile)}/{len(hostile)} "
        f"({dict(reasons)}), valid completed {completed}/{valid}, worker crashes 0, "
        f"sentinel absent"
    )


def hostile_payloads(sentinel: Path, per_kind: int | tuple[int, int]) -> list[Hostile]:
    if isinstance(per_kind, int):
        return list(generate(per_kind, sentinel, seed=6))
    more, fewer = per_kind
    many = list(generate(more, sentinel, seed=6))
    keep = {kind: more if i < 4 else fewer for i, kind in enumerate(KINDS)}
    out, seen = [], Counter[str]()
    for one in many:
        if seen[one.kind] < keep[one.kind]:
            seen[one.kind] += 1
            out.append(one)
    assert len(out) == 1000
    return out


def write_interleaved(
    store: Store, producer: errands.App, hostile: list[Hostile], valid: int, *, chunks: int
) -> list[str]:
    """Chunk by chunk: hostile rows by plain sqlite3, then valid jobs through enqueue (whose
    wake-up also tells the workers about the rows written behind their back)."""
    valid_ids: list[str] = []
    order = sorted(range(len(hostile)), key=lambda i: (i * 7919) % len(hostile))  # mix kinds
    with store.connect() as connection:
        for c in range(chunks):
            part = order[c::chunks]
            now = int(time.time() * 1000)
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                INSERT, [(*as_stored(i, hostile[i].raw), now, now) for i in part]
            )
            connection.execute("COMMIT")
            count = valid // chunks + (1 if c < valid % chunks else 0)
            handles = producer.enqueue_many([faultapp.noop.call(i) for i in range(count)])
            valid_ids += [h.id for h in handles]
    return valid_ids


def check_dead_letters(store: Store, hostile: list[Hostile]) -> list[str]:
    """Everything wrong with the hostile rows, one line each (empty when all is well)."""
    wrong = []
    rows = store.query(
        "SELECT id, state, fail_reason, payload, typeof(payload), errors, attempt, failures "
        f"FROM jobs WHERE {HOSTILE_ROWS} ORDER BY id"
    )
    assert len(rows) == len(hostile)
    for row in rows:
        one = hostile[int(row["id"].split("-")[1])]
        label = f"{row['id']} {one.kind}/{one.variant}"
        errors = json.loads(row["errors"])
        if row["state"] != "failed" or row["fail_reason"] != one.reason:
            wrong.append(f"{label}: {row['state']}/{row['fail_reason']}, want {one.reason}")
            continue
        if row["typeof(payload)"] != "blob" or row["payload"] != row_payload(row["id"], one):
            wrong.append(f"{label}: stored payload changed")
        problem = error_problem(
            one, row_payload(row["id"], one), errors, row["attempt"], row["failures"]
        )
        if problem:
            wrong.append(f"{label}: {problem}")
    return wrong


def row_payload(job_id: str, one: Hostile) -> bytes:
    """The payload stored for `one` in the row `job_id`."""
    return as_stored(int(job_id.split("-")[1]), one.raw)[2]


def error_problem(
    one: Hostile, raw: bytes, errors: list[dict[str, str]], attempt: int, failures: int
) -> str:
    if one.reason is FailReason.ERROR:
        # Wrong types: the task raised TypeError on each of its max_attempts (3) attempts.
        if attempt != 3 or failures != 3 or [e["type"] for e in errors] != ["TypeError"] * 3:
            return f"attempt {attempt}, failures {failures}, errors {errors}"
        return ""
    if attempt != 1 or len(errors) != 1:  # dead-lettered at once, never retried
        return f"attempt {attempt}, {len(errors)} errors"
    [error] = errors
    if one.reason is FailReason.MALFORMED:
        kept = f"raw payload ({len(raw)} bytes): {raw[:RAW_KEEP]!r}"
        if error["kind"] != "malformed" or kept not in error["message"]:
            return f"raw bytes not kept in the error: {error['message'][:200]}"
        found = {c for c in one.codes if c is not None and f"({c})" in error["message"]}
        if not found and None not in one.codes:
            return f"reason code not one of {sorted(map(str, one.codes))}: {error['message'][:200]}"
        return ""
    if error["kind"] != "exception":
        return f"error kind {error['kind']}"
    return ""
