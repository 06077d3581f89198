"""Rate and concurrency limits on PostgreSQL: each limited job's limits stored at enqueue, and
the claim of queues that hold limited jobs, through brokers/gate.py.

The claim statement (queries.sql) takes no limited job, and takes nothing while one is
available in its queues; the claim then comes here, in one transaction: candidates locked
FOR UPDATE SKIP LOCKED with the jobs of shut keys left out, an advisory lock per limit key
(so claimers of one key go one after another, each counting the running jobs of the one
before), the gate, the lease, the keys' new state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec

from errands.brokers.contract import Claimed, ClaimOptions
from errands.brokers.gate import Gate
from errands.brokers.postgres import rows
from errands.brokers.postgres.pool import Connection
from errands.brokers.postgres.sql import Scope
from errands.brokers.sqlfiles import load_queries
from errands.job import JobId, JobSpec
from errands.limits import QUEUE_PREFIX, Limit, queue_key

Q: Final = load_queries("errands.brokers.postgres", "limits.sql")
#: Rounds of candidates one claim reads at most: each round after the first follows keys that
#: filled up during the claim, so a few suffice; the next claim picks up where it stopped.
ROUNDS: Final = 8

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(tuple[Limit, ...]).decode


async def store(connection: Any, specs: Sequence[JobSpec]) -> None:
    """Store the limits of the specs just inserted (inside the enqueue's transaction)."""
    limited = [spec for spec in specs if spec.limits]
    if limited:
        await connection.execute(
            Q["limits_store"],
            {
                "ids": [spec.id for spec in limited],
                "limit_keys": [_task_key(spec.limits) for spec in limited],
                "limits": [_encode(spec.limits).decode() for spec in limited],
            },
        )


async def waiting(connection: Connection, queues: Sequence[str]) -> bool:
    """Whether a limited job is available in `queues` (one probe of a partial index)."""
    return bool(await _value(connection, "limits_waiting", {"queues": list(queues)}))


async def claim(connection: Connection, scope: Scope, options: ClaimOptions) -> list[Claimed]:
    """Lease up to `options.n` jobs of `options.queues` in claim order, each admitted by the
    gate, in one transaction; the jobs it holds back stay available."""
    async with connection.transaction():
        now = scope.now()
        now_ms = int(await _value(connection, "limits_now", {"now": now}))
        found = await connection.execute(Q["limits_open_queues"], {"queues": list(options.queues)})
        queues = [name for (name,) in await found.fetchall()]
        shut = await _shut(connection, queues, now, now_ms)
        gate = Gate(now_ms, {}, {})
        known: set[str] = set()
        taken: list[Claimed] = []
        for round_ in range(ROUNDS):
            closed = shut | gate.blocked
            open_queues = [queue for queue in queues if queue_key(queue) not in closed]
            candidates = await _candidates(connection, open_queues, closed, options.n - len(taken))
            if not candidates:
                break
            limits = {row[0]: _decode(row[3]) if row[3] else () for row in candidates}
            fresh = {limit.key for found in limits.values() for limit in found} - known
            if fresh:
                gate.blocked |= await _lock(connection, scope, fresh, wait=round_ == 0)
                await _learn(connection, gate, fresh, now)
                known |= fresh
            admitted: list[JobId] = []
            held = False
            for job_id, *_ in candidates:
                if len(taken) + len(admitted) == options.n:
                    break
                if gate.admit(limits[job_id]):
                    admitted.append(job_id)
                else:
                    held = True
            if admitted:
                taken += await _take(connection, now, options, admitted)
            if not held or len(taken) == options.n:
                break
        await _keep(connection, gate, now_ms)
    taken.sort(key=lambda one: (-one.job.priority, one.job.scheduled_at, one.job.id))
    return taken


async def readiness(
    connection: Connection, scope: Scope, queues: Sequence[str], ready: bool, due_in: float | None
) -> tuple[bool, float | None]:
    """The readiness statement's answer (`ready`, `due_in`), where a job its limits hold back
    does not count as ready (a worker would claim nothing and ask again at once) and a shut
    key's opening counts as due."""
    if not ready or not await waiting(connection, queues):
        return ready, due_in
    now = scope.now()
    now_ms = int(await _value(connection, "limits_now", {"now": now}))
    shut = await _shut(connection, queues, now, now_ms)
    open_queues = [queue for queue in queues if queue_key(queue) not in shut]
    ready_params = {"queues": open_queues, "shut": sorted(shut)}
    if await _value(connection, "limits_ready", ready_params):
        return True, due_in
    opens_params = {"now_ms": now_ms, "keys": sorted(shut)}
    opens_in = await _value(connection, "limits_next_open", opens_params)
    times = [float(at) for at in (due_in, opens_in) if at is not None]
    return False, min(times, default=None)


async def _value(connection: Connection, name: str, params: dict[str, Any]) -> Any:
    found = await connection.execute(Q[name], params)
    row = await found.fetchone()
    assert row is not None
    return row[0]


async def _shut(connection: Connection, queues: Sequence[str], now: Any, now_ms: int) -> set[str]:
    params = {"queues": list(queues), "now": now, "now_ms": now_ms}
    found = await connection.execute(Q["limits_shut"], params)
    return {key for (key,) in await found.fetchall()}


async def _candidates(
    connection: Connection, queues: Sequence[str], closed: set[str], n: int
) -> list[Any]:
    if not queues:
        return []
    params = {"queues": list(queues), "shut": sorted(closed), "n": n}
    found = await connection.execute(Q["limits_candidates"], params)
    return list(await found.fetchall())


async def _lock(
    connection: Connection, scope: Scope, keys: Iterable[str], *, wait: bool
) -> set[str]:
    """Take the advisory lock of each key; the keys not taken (only when not waiting, in a
    later round, so no two claimers wait for each other in a circle)."""
    by_lock = {scope.url.lock_key(f"limit:{key}"): key for key in keys}
    locks = sorted(by_lock)
    if wait:
        await connection.execute(Q["limits_lock"], {"locks": locks})
        return set()
    found = await connection.execute(Q["limits_try_lock"], {"locks": locks})
    return {by_lock[lock] for lock, locked in await found.fetchall() if not locked}


async def _learn(connection: Connection, gate: Gate, keys: Iterable[str], now: Any) -> None:
    keys = sorted(keys)
    task_keys = [key for key in keys if not key.startswith(QUEUE_PREFIX)]
    queues = [key[len(QUEUE_PREFIX) :] for key in keys if key.startswith(QUEUE_PREFIX)]
    params = {"now": now, "keys": task_keys, "queues": queues}
    found = await connection.execute(Q["limits_running"], params)
    running = {key: n for key, n in await found.fetchall()}
    found = await connection.execute(Q["limits_tats"], {"keys": keys})
    gate.learn(running, {key: tat for key, tat in await found.fetchall()})


async def _take(
    connection: Connection, now: Any, options: ClaimOptions, ids: Sequence[JobId]
) -> list[Claimed]:
    params = {"now": now, "worker_id": options.worker_id, "lease": options.lease, "ids": list(ids)}
    found = await connection.execute(Q["limits_take"], params)
    names = [column.name for column in found.description or ()]
    return rows.claimed_from_rows(await found.fetchall(), names)


async def _keep(connection: Connection, gate: Gate, now_ms: int) -> None:
    states = gate.states()
    if states:
        await connection.execute(
            Q["limits_keep"],
            {
                "keys": [state.key for state in states],
                "tats": [state.tat_us for state in states],
                "opens": [state.open_at_ms for state in states],
                "caps": [state.concurrency for state in states],
            },
        )
    await connection.execute(Q["limits_forget"], {"now_ms": now_ms})


def _task_key(limits: Sequence[Limit]) -> str | None:
    return next((limit.key for limit in limits if limit.queue is None), None)
