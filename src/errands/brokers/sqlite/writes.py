"""Write transactions of the SQLite broker that producers and operators start: migrate,
enqueue, cancel, requeue, purge, pause and resume.

Each function is the body of one BEGIN IMMEDIATE transaction run by Database.write on the
writer thread; the worker's verbs are in leases.py, the SQL in queries.sql.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence, Set

from errands.brokers.contract import Enqueued
from errands.brokers.sqlfiles import Migration
from errands.brokers.sqlite import dependencies, limits
from errands.brokers.sqlite.rows import INSERT_QUEUE, InsertRow, insert_params
from errands.brokers.sqlite.sql import MIGRATIONS, Q, as_json
from errands.job import JobId, JobSpec, JobState


def migrate(connection: sqlite3.Connection, now_ms: int) -> list[int]:
    """Apply the migrations not yet recorded; returns the versions applied.

    The caller's BEGIN IMMEDIATE holds the write lock, so processes racing to migrate take
    turns and the later ones find nothing left to do.
    """
    connection.execute(Q["migrations_create"])
    applied = {row["version"] for row in connection.execute(Q["migrations_applied"])}
    done: list[int] = []
    for migration in MIGRATIONS:
        if migration.version not in applied:
            _apply(connection, migration, now_ms)
            done.append(migration.version)
    return done


def _apply(connection: sqlite3.Connection, migration: Migration, now_ms: int) -> None:
    for statement in migration.statements():
        connection.execute(statement)
    connection.execute(
        Q["migration_record"],
        {"version": migration.version, "name": migration.name, "now": now_ms},
    )


Key = tuple[str, str]  # (task, idempotency key)


def enqueue(
    connection: sqlite3.Connection,
    specs: Sequence[JobSpec],
    now_ms: int,
    known_queues: Set[str] = frozenset(),
) -> list[Enqueued]:
    """Store `specs` in input order; a taken (task, idempotency key) or a known id yields a
    duplicate. The unique index on (task, key) is what keeps a key to one job; reading the
    owners first only tells each duplicate which job it names. Queues in `known_queues` are
    already stored (queue rows are never deleted), so their rows are not written again."""
    if len(specs) == 1 and _plain(specs[0]):
        return _enqueue_one(connection, specs[0], now_ms, known_queues)
    owners = _key_owners(connection, specs, now_ms)
    replies: list[Enqueued] = []
    rows: list[InsertRow] = []
    for spec in specs:
        key = None if spec.idempotency_key is None else (spec.task, spec.idempotency_key)
        if key is not None and key in owners:
            replies.append(Enqueued(owners[key], duplicate=True))
            continue
        if key is not None:
            owners[key] = spec.id  # a later spec of this batch with the key is a duplicate
        replies.append(Enqueued(spec.id))
        rows.append(insert_params(spec, now_ms))
    if _insert_all(connection, rows):
        queues = {s.queue for s in specs} - known_queues
        connection.executemany(Q["queue_add"], [{"name": q} for q in queues])
    else:
        replies = _insert_one_by_one(connection, replies, rows)
    stored = (s for s, r in zip(specs, replies, strict=True) if s.depends_on and not r.duplicate)
    dependencies.add(connection, stored)
    limits.store(connection, specs, replies)
    return replies


def _plain(spec: JobSpec) -> bool:
    """True for a job without a key, dependencies or limits: its insert is all it writes."""
    return spec.idempotency_key is None and not spec.depends_on and not spec.limits


def _enqueue_one(
    connection: sqlite3.Connection, spec: JobSpec, now_ms: int, known_queues: Set[str]
) -> list[Enqueued]:
    # One plain job, the single enqueue's common case: no savepoint is needed to undo a
    # batch, as an id already stored inserts nothing and is the duplicate of itself.
    stored = connection.execute(Q["job_insert"], insert_params(spec, now_ms)).rowcount == 1
    if stored and spec.queue not in known_queues:
        connection.execute(Q["queue_add"], {"name": spec.queue})
    return [Enqueued(spec.id, duplicate=not stored)]


def _key_owners(
    connection: sqlite3.Connection, specs: Sequence[JobSpec], now_ms: int
) -> dict[Key, JobId]:
    """The jobs that hold the batch's keys now, after releasing keys whose results expired."""
    pairs = [[s.task, s.idempotency_key] for s in specs if s.idempotency_key is not None]
    if not pairs:
        return {}
    params = {"pairs": as_json(pairs), "now": now_ms}
    connection.execute(Q["idempotency_release"], params)
    cursor = connection.execute(Q["idempotency_owners"], {"pairs": params["pairs"]})
    return {(row["task"], row["idempotency_key"]): row["id"] for row in cursor}


def _insert_all(connection: sqlite3.Connection, rows: list[InsertRow]) -> bool:
    """Insert every row; False (and nothing inserted) if an id was already stored."""
    connection.execute("SAVEPOINT enqueue")
    inserted = connection.executemany(Q["job_insert"], rows).rowcount
    if inserted == len(rows):
        connection.execute("RELEASE enqueue")
        return True
    connection.execute("ROLLBACK TO enqueue")
    connection.execute("RELEASE enqueue")
    return False


def _insert_one_by_one(
    connection: sqlite3.Connection, replies: list[Enqueued], rows: list[InsertRow]
) -> list[Enqueued]:
    # The slow path, taken only when a spec's id is already stored (or repeated in the batch):
    # a producer resending a batch whose reply it lost. Such a spec is a duplicate of itself.
    fresh = iter(rows)
    out: list[Enqueued] = []
    for reply in replies:
        if reply.duplicate:
            out.append(reply)
            continue
        row = next(fresh)
        stored = connection.execute(Q["job_insert"], row).rowcount == 1
        if stored:
            connection.execute(Q["queue_add"], {"name": row[INSERT_QUEUE]})
        out.append(Enqueued(reply.job_id, duplicate=not stored))
    return out


def cancel(
    connection: sqlite3.Connection, job_ids: Sequence[JobId], reason: str, now_ms: int
) -> tuple[int, bool]:
    """Cancel waiting jobs (and the dependents that cancels), flag running ones; returns how
    many jobs ended now and whether a dependent was released."""
    ids = as_json(job_ids)
    rows = connection.execute(Q["cancel_waiting"], {"ids": ids, "reason": reason, "now": now_ms})
    ended = [row["id"] for row in rows.fetchall()]
    connection.execute(Q["cancel_request"], {"ids": ids})
    cascaded, released = dependencies.settle(connection, [(i, False) for i in ended], now_ms)
    return len(ended) + len(cascaded), released


def requeue(connection: sqlite3.Connection, job_ids: Sequence[JobId], now_ms: int) -> int:
    """Failed and cancelled jobs become available; returns how many moved."""
    return connection.execute(Q["requeue"], {"ids": as_json(job_ids), "now": now_ms}).rowcount


def purge(
    connection: sqlite3.Connection, queue: str, states: Sequence[JobState], now_ms: int
) -> tuple[int, bool]:
    """Delete the queue's jobs in `states` (never running ones) with their own dependency
    rows, and settle their dependents as a cancel does. Returns how many were deleted and
    whether a dependent was released."""
    params = {"queue": queue, "states": as_json([str(state) for state in states])}
    deleted = [row["id"] for row in connection.execute(Q["purge"], params).fetchall()]
    if not deleted:
        return 0, False
    connection.execute(Q["dependencies_of_deleted"], {"ids": as_json(deleted)})
    _, released = dependencies.settle(connection, [(i, False) for i in deleted], now_ms)
    return len(deleted), released


def pause(connection: sqlite3.Connection, queues: Sequence[str]) -> None:
    """Mark `queues` paused, creating them if unknown."""
    connection.executemany(Q["queue_pause"], [{"name": name} for name in queues])


def resume(connection: sqlite3.Connection, queues: Sequence[str]) -> None:
    """Clear the paused mark of `queues`."""
    connection.executemany(Q["queue_resume"], [{"name": name} for name in queues])
