"""Enqueue on PostgreSQL: a batch of specs inserted in one statement, and the rounds that name
the job each duplicate matched, on a connection the broker lends (a pooled one, a firing's in
its transaction, or the caller's own: transactional.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from errands.brokers.contract import Enqueued
from errands.brokers.postgres import limits, rows
from errands.brokers.postgres.pool import Connection
from errands.brokers.postgres.sql import Q, Scope
from errands.errors import BrokerError
from errands.job import JobId, JobSpec

#: Rounds of an enqueue that met a key whose owner vanished before it could be named.
ENQUEUE_ROUNDS: Final = 5

Key = tuple[str, str]  # (task, idempotency key)


async def many(connection: Connection, scope: Scope, specs: Sequence[JobSpec]) -> list[Enqueued]:
    """Store the specs in one statement, or a short transaction when they carry idempotency
    keys, dependencies or limits; see Broker.enqueue_many."""
    plain = (s.idempotency_key is None and not s.depends_on and not s.limits for s in specs)
    if all(plain):
        return await _insert_all(connection, scope, specs)
    async with connection.transaction():
        return await keyed(connection, scope, specs)


async def keyed(connection: Any, scope: Scope, specs: Sequence[JobSpec]) -> list[Enqueued]:
    """Release the expired keys the specs name, then insert, with the dependencies of the
    pending jobs stored (inside a transaction)."""
    keys = [spec for spec in specs if spec.idempotency_key is not None]
    if keys:
        await connection.execute(
            Q["enqueue_release"],
            {
                "tasks": [spec.task for spec in keys],
                "keys": [spec.idempotency_key for spec in keys],
                "now": scope.now(),
            },
        )
    replies = await _insert_all(connection, scope, specs)
    await limits.store(connection, specs)
    waiting = [spec for spec in specs if spec.depends_on]
    if waiting:
        stored = [
            r.job_id
            for s, r in zip(specs, replies, strict=True)
            if s.depends_on and not r.duplicate
        ]
        await connection.execute(Q["dependencies_insert"], rows.dependency_params(waiting, stored))
    return replies


async def _insert_all(
    connection: Connection, scope: Scope, specs: Sequence[JobSpec]
) -> list[Enqueued]:
    """Insert the specs and name the job each duplicate matched, as if they were stored
    one by one in order (the memory broker's rule: a stored id first, then a live key).

    The insert itself decides every conflict with stored jobs and with racing producers
    (the unique indexes). Within the batch, a spec whose id or (task, key) an earlier one
    also has waits for a later round, once the earlier one is settled: usually one round,
    two when the batch repeats itself."""
    replies: list[Enqueued | None] = [None] * len(specs)
    pending = list(range(len(specs)))
    for _ in range(len(specs) + ENQUEUE_ROUNDS):
        if not pending:
            return [reply for reply in replies if reply is not None]
        chosen, later = _first_of_each(specs, pending)
        stored = await _insert(connection, scope, [specs[i] for i in chosen])
        for i in chosen:
            if specs[i].id in stored:
                replies[i] = Enqueued(specs[i].id)
        rest = sorted([i for i in chosen if replies[i] is None] + later)
        found = await _owners(connection, [specs[i] for i in rest])
        pending = []
        blocked_ids: set[JobId] = set()
        blocked_keys: set[Key] = set()
        for i, (id_stored, owner) in zip(rest, found, strict=True):
            spec = specs[i]
            key = _key(spec)
            if spec.id in blocked_ids or (key is not None and key in blocked_keys):
                pass  # an earlier spec of the batch may still take its id or key
            elif id_stored:  # a resend: never reset the stored job
                replies[i] = Enqueued(spec.id, duplicate=True)
                continue
            elif owner is not None:
                replies[i] = Enqueued(owner, duplicate=True)
                continue
            # Neither its id nor its key is taken (an earlier spec of the batch that held
            # them turned out a duplicate, or a key's owner went meanwhile): insert it next.
            pending.append(i)
            blocked_ids.add(spec.id)
            if key is not None:
                blocked_keys.add(key)
    raise BrokerError(f"enqueue at {scope.url.location}: idempotency keys kept changing hands")


async def _insert(connection: Connection, scope: Scope, specs: Sequence[JobSpec]) -> set[JobId]:
    params = rows.enqueue_params(specs)
    params.update(now=scope.now(), ready=scope.url.ready_channel)
    cursor = await connection.execute(Q["enqueue"], params)
    found = await cursor.fetchone()
    assert found is not None
    return set(found[0])


async def _owners(
    connection: Connection, specs: Sequence[JobSpec]
) -> list[tuple[bool, JobId | None]]:
    """For each spec: whether its id is stored, and which job holds its (task, key)."""
    if not specs:
        return []
    cursor = await connection.execute(
        Q["enqueue_owners"],
        {
            "ids": [spec.id for spec in specs],
            "tasks": [spec.task for spec in specs],
            "keys": [spec.idempotency_key for spec in specs],
        },
    )
    return [(bool(stored), owner) for _, stored, owner in await cursor.fetchall()]


def _first_of_each(specs: Sequence[JobSpec], pending: Sequence[int]) -> tuple[list[int], list[int]]:
    """Split `pending` (positions in `specs`, in order) into the specs one insert can decide
    and those that must wait: a spec waits if an earlier pending one has its id or its (task,
    key), since what it is a duplicate of depends on how that one is settled."""
    chosen: list[int] = []
    later: list[int] = []
    ids: set[JobId] = set()
    keys: set[Key] = set()
    for i in pending:
        spec = specs[i]
        key = _key(spec)
        if spec.id in ids or (key is not None and key in keys):
            later.append(i)
        else:
            chosen.append(i)
        ids.add(spec.id)
        if key is not None:
            keys.add(key)
    return chosen, later


def _key(spec: JobSpec) -> Key | None:
    return None if spec.idempotency_key is None else (spec.task, spec.idempotency_key)
