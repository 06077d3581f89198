"""Rate and concurrency limits on SQLite: each limited job's limits stored at enqueue, and the
claim of queues that hold limited jobs, through brokers/gate.py.

All of it runs inside the claim's BEGIN IMMEDIATE transaction, which already serializes every
writer of the file: two claimers cannot both read "1 running, limit 2" and take three.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Final

import msgspec

from errands.brokers.contract import Enqueued
from errands.brokers.gate import Gate
from errands.brokers.sqlfiles import load_queries
from errands.brokers.sqlite import reads
from errands.brokers.sqlite.sql import as_json
from errands.job import JobId, JobSpec
from errands.limits import QUEUE_PREFIX, Limit, queue_key

Q: Final = load_queries("errands.brokers.sqlite", "limits.sql")
#: Rounds of candidates one claim reads at most: each round after the first follows keys that
#: filled up during the claim, so a few suffice; the next claim picks up where it stopped.
ROUNDS: Final = 8

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(tuple[Limit, ...]).decode


def store(
    connection: sqlite3.Connection, specs: Sequence[JobSpec], replies: Sequence[Enqueued]
) -> None:
    """Store the limits of the specs just inserted (not the duplicates)."""
    rows = [
        {"id": spec.id, "limit_key": _task_key(spec.limits), "limits": _encode(spec.limits)}
        for spec, reply in zip(specs, replies, strict=True)
        if spec.limits and not reply.duplicate
    ]
    if rows:
        connection.executemany(Q["limits_store"], rows)


def waiting(connection: sqlite3.Connection, queues: Sequence[str]) -> bool:
    """Whether a limited job is available in `queues` (one probe of a partial index)."""
    row = connection.execute(Q["limits_waiting"], {"queues": as_json(queues)}).fetchone()
    return bool(row["waiting"])


def claim(
    connection: sqlite3.Connection,
    queues: Sequence[str],
    n: int,
    params: dict[str, object],
    now_ms: int,
    claim_ids: str,
) -> list[sqlite3.Row]:
    """Lease up to `n` jobs of `queues` in claim order, each admitted by the gate; the jobs it
    holds back stay available. `claim_ids` is the statement that leases a list of ids."""
    shut = _shut(connection, queues, now_ms)
    gate = Gate(now_ms, {}, {})
    known: set[str] = set()
    taken: list[sqlite3.Row] = []
    for _ in range(ROUNDS):
        closed = shut | gate.blocked
        candidates = _candidates(connection, queues, closed, n - len(taken))
        if not candidates:
            break
        limits = {row["id"]: _decode(row["limits"]) if row["limits"] else () for row in candidates}
        fresh = {limit.key for found in limits.values() for limit in found} - known
        if fresh:
            _learn(connection, gate, fresh, now_ms)
            known |= fresh
        admitted: list[JobId] = []
        held = False
        for row in candidates:
            if len(taken) + len(admitted) == n:
                break
            if gate.admit(limits[row["id"]]):
                admitted.append(row["id"])
            else:
                held = True
        if admitted:
            found = connection.execute(claim_ids, {**params, "ids": as_json(admitted)})
            taken += found.fetchall()
        if not held or len(taken) == n:
            break
    _keep(connection, gate, now_ms)
    return taken


def readiness(
    connection: sqlite3.Connection, queues: Sequence[str], now_ms: int
) -> tuple[bool, int | None]:
    """reads.readiness, where a job its limits hold back does not count as ready (a worker
    would claim nothing and ask again at once) and a shut key's opening counts as due."""
    ready, next_due = reads.readiness(connection, queues)
    if not ready or not waiting(connection, queues):
        return ready, next_due
    shut = _shut(connection, queues, now_ms)
    closed = as_json(sorted(shut))
    open_queues = as_json([queue for queue in queues if queue_key(queue) not in shut])
    row = connection.execute(Q["limits_ready"], {"queues": open_queues, "shut": closed})
    if row.fetchone()["ready"]:
        return True, next_due
    opens = connection.execute(Q["limits_next_open"], {"now": now_ms, "keys": closed})
    times = [at for at in (next_due, opens.fetchone()["at"]) if at is not None]
    return False, min(times, default=None)


def _shut(connection: sqlite3.Connection, queues: Sequence[str], now_ms: int) -> set[str]:
    params = {"queues": as_json(queues), "now": now_ms}
    return {row["key"] for row in connection.execute(Q["limits_shut"], params)}


def _candidates(
    connection: sqlite3.Connection, queues: Sequence[str], closed: set[str], n: int
) -> list[sqlite3.Row]:
    closed_json = as_json(sorted(closed))
    rows: list[sqlite3.Row] = []
    for queue in queues:
        if queue_key(queue) in closed:
            continue
        params = {"queue": queue, "shut": closed_json, "n": n}
        rows += connection.execute(Q["limits_candidates"], params)
    rows.sort(key=lambda row: (-row["priority"], row["scheduled_at"], row["id"]))
    return rows


def _learn(connection: sqlite3.Connection, gate: Gate, keys: Iterable[str], now_ms: int) -> None:
    keys = sorted(keys)
    task_keys = [key for key in keys if not key.startswith(QUEUE_PREFIX)]
    queues = [key[len(QUEUE_PREFIX) :] for key in keys if key.startswith(QUEUE_PREFIX)]
    params = {"now": now_ms, "keys": as_json(task_keys), "queues": as_json(queues)}
    running = {row["key"]: row["n"] for row in connection.execute(Q["limits_running"], params)}
    found = connection.execute(Q["limits_tats"], {"keys": as_json(keys)})
    gate.learn(running, {row["key"]: row["tat_us"] for row in found})


def _keep(connection: sqlite3.Connection, gate: Gate, now_ms: int) -> None:
    rows = [
        {
            "key": state.key,
            "tat_us": state.tat_us,
            "open_at": state.open_at_ms,
            "concurrency": state.concurrency,
        }
        for state in gate.states()
    ]
    if rows:
        connection.executemany(Q["limits_keep"], rows)
    connection.execute(Q["limits_forget"], {"now_us": now_ms * 1000})


def _task_key(limits: Sequence[Limit]) -> str | None:
    return next((limit.key for limit in limits if limit.queue is None), None)
