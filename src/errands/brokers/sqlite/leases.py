"""Write transactions a worker starts about its leases: claim, extend and finish.

Each function is the body of one BEGIN IMMEDIATE transaction run by Database.write on the
writer thread; rows come back raw and are turned into values outside the transaction, so the
write lock is held only for SQL.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import cast

from errands.brokers.contract import ClaimOptions, WorkerInfo
from errands.brokers.sqlite import dependencies, limits
from errands.brokers.sqlite.rows import heartbeat_params
from errands.brokers.sqlite.sql import Q, as_json, json_text
from errands.brokers.values import error_json, progress_json
from errands.clock import to_ms
from errands.job import JobId, Progress
from errands.lease import Lease
from errands.outcome import (
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Outcome,
    Released,
    Retrying,
    Snoozed,
)

Params = dict[str, object]


def claim(connection: sqlite3.Connection, options: ClaimOptions, now_ms: int) -> list[sqlite3.Row]:
    """Promote every due job (of any queue, as the memory broker does), then lease up to
    `options.n` claimable jobs of `options.queues`.

    Returns the claimed rows in claim order (priority high first, then scheduled_at, id).
    """
    queues, n = options.queues, options.n
    if n <= 0:
        return []
    connection.execute(Q["promote_due"], {"now": now_ms, "limit": -1})
    paused_rows = connection.execute(Q["queues_paused_among"], {"queues": as_json(queues)})
    paused = {row["name"] for row in paused_rows}
    open_queues = [queue for queue in dict.fromkeys(queues) if queue not in paused]
    if not open_queues:
        return []
    params: Params = {
        "now": now_ms,
        "worker_id": options.worker_id,
        "expires_at": now_ms + to_ms(options.lease),
    }
    if limits.waiting(connection, open_queues):
        taken = limits.claim(connection, open_queues, n, params, now_ms, Q["claim_ids"])
        return sorted(taken, key=_claim_order)
    if len(open_queues) == 1:
        rows = connection.execute(Q["claim_queue"], {**params, "queue": open_queues[0], "n": n})
    else:
        ids = _best_of_queues(connection, open_queues, n)
        rows = connection.execute(Q["claim_ids"], {**params, "ids": as_json(ids)})
    # RETURNING gives rows in no promised order; fetch them all before the COMMIT.
    return sorted(rows.fetchall(), key=_claim_order)


def _best_of_queues(connection: sqlite3.Connection, queues: list[str], n: int) -> list[JobId]:
    candidates: list[sqlite3.Row] = []
    for queue in queues:
        candidates += connection.execute(Q["claim_candidates"], {"queue": queue, "n": n})
    candidates.sort(key=_claim_order)
    return [row["id"] for row in candidates[:n]]


def _claim_order(row: sqlite3.Row) -> tuple[int, int, str]:
    return (-row["priority"], row["scheduled_at"], row["id"])


def _running(connection: sqlite3.Connection, leases: Sequence[Lease]) -> dict[JobId, sqlite3.Row]:
    """The running rows among the jobs of `leases`, by job id; tokens are compared by
    `_holds`."""
    if not leases:
        return {}
    ids = as_json([lease.job_id for lease in leases])
    return {row["id"]: row for row in connection.execute(Q["leases_held"], {"ids": ids})}


def reclaim(
    connection: sqlite3.Connection,
    limit: int,
    gone: Sequence[str],
    *,
    lease_ms: int,
    now_ms: int,
) -> list[sqlite3.Row]:
    """Take over expired leases and those of gone workers with fresh tokens; see
    Broker.reclaim."""
    params = {"now": now_ms, "expires_at": now_ms + lease_ms, "gone": as_json(list(gone))}
    return connection.execute(Q["leases_reclaim"], {**params, "limit": limit}).fetchall()


def _holds(running: Mapping[JobId, sqlite3.Row], lease: Lease) -> bool:
    row = running.get(lease.job_id)
    return row is not None and row["lease_token"] == lease.token


def extend(
    connection: sqlite3.Connection,
    leases: Sequence[Lease],
    *,
    lease_ms: int,
    heartbeat: WorkerInfo,
    progress: Mapping[JobId, Progress],
    now_ms: int,
) -> tuple[list[Lease], list[JobId], int]:
    """Push back every held lease to now + lease; store progress and the heartbeat.

    Returns the held leases, the ids among them with a cancel pending, and the new expiry.
    """
    running = _running(connection, leases)
    expires_ms = now_ms + lease_ms
    kept = [lease for lease in leases if _holds(running, lease)]
    rows = []
    for lease in kept:
        said = progress.get(lease.job_id)
        rows.append(
            {
                "id": lease.job_id,
                "token": lease.token,
                "expires_at": expires_ms,
                "progress": None if said is None else progress_json(said),
            }
        )
    connection.executemany(Q["lease_extend"], rows)
    connection.execute(Q["worker_beat"], heartbeat_params(heartbeat, now_ms))
    cancels = [lease.job_id for lease in kept if running[lease.job_id]["cancel_requested"]]
    return kept, cancels, expires_ms


def finish(
    connection: sqlite3.Connection, outcomes: Sequence[Outcome], now_ms: int
) -> tuple[list[bool], bool]:
    """Apply each outcome whose lease holds, grouped into one executemany per kind, then the
    endings to the jobs that depend on them (dependencies.settle).

    Returns, in input order, whether each was applied, and whether a dependent was released.
    A second outcome for one lease in the same batch is refused, as it would be in a later call.
    """
    applied = _finish_completed(connection, outcomes, now_ms)
    if applied is None:
        applied = _finish_each(connection, outcomes, now_ms)
    ended = [
        (outcome.lease.job_id, isinstance(outcome, Completed))
        for outcome, ok in zip(outcomes, applied, strict=True)
        if ok and isinstance(outcome, Completed | Failed | Cancelled)
    ]
    _, released = dependencies.settle(connection, ended, now_ms) if ended else ((), False)
    return applied, released


def _finish_completed(
    connection: sqlite3.Connection, outcomes: Sequence[Outcome], now_ms: int
) -> list[bool] | None:
    """The common batch, every outcome a Completed of its own job, in one statement; None
    for any other batch."""
    if any(type(outcome) is not Completed for outcome in outcomes):
        return None
    ids = [outcome.lease.job_id for outcome in outcomes]
    if len(set(ids)) != len(ids):
        return None  # a second outcome for a lease is refused by the one-by-one path
    completed = cast(Sequence[Completed], outcomes)
    try:
        batch = [[o.lease.job_id, o.lease.token, _text(o.result)] for o in completed]
    except ValueError:
        return None  # bytes JSON text cannot carry as they are (another program's results)
    params = {"batch": json_text(batch), "now": now_ms}
    rows = connection.execute(Q["finish_completed_batch"], params)
    done = {row[0] for row in rows}
    return [job_id in done for job_id in ids]


def _text(result: bytes) -> str:
    """`result` as text that comes back from JSON as the same bytes; ValueError if none can."""
    if b"\0" in result:
        raise ValueError("a NUL byte")
    return result.decode()  # UnicodeDecodeError is a ValueError


def _finish_each(
    connection: sqlite3.Connection, outcomes: Sequence[Outcome], now_ms: int
) -> list[bool]:
    running = _running(connection, [outcome.lease for outcome in outcomes])
    batches: defaultdict[str, list[Params]] = defaultdict(list)
    applied: list[bool] = []
    for outcome in outcomes:
        lease = outcome.lease
        holds = _holds(running, lease)
        if holds:
            del running[lease.job_id]  # one outcome per lease
            name, params = _statement(outcome, now_ms)
            batches[name].append(
                {"id": lease.job_id, "token": lease.token, "now": now_ms, **params}
            )
        applied.append(holds)
    for name, rows in batches.items():
        connection.executemany(Q[name], rows)
    return applied


def _statement(outcome: Outcome, now_ms: int) -> tuple[str, Params]:
    """The finish_* query for `outcome` and the parameters beyond id, token and now."""
    match outcome:
        case Completed(result=result):
            return "finish_completed", {"result": result}
        case Retrying(error=error, delay=delay):
            return "finish_retrying", {
                "error": error_json(error),
                "scheduled_at": now_ms + to_ms(delay),
            }
        case Failed(reason=reason, error=error):
            return "finish_failed", {
                "reason": str(reason),
                "error": None if error is None else error_json(error),
            }
        case Crashed(error=error, delay=delay):
            return "finish_crashed", {
                "error": error_json(error),
                # No delay: keep the job's place in line (NULL keeps its scheduled_at).
                "scheduled_at": now_ms + to_ms(delay) if delay else None,
            }
        case Cancelled(reason=reason):
            return "finish_cancelled", {"reason": str(reason)}
        case Released():
            return "finish_released", {}
        case Snoozed(delay=delay):
            return "finish_snoozed", {"scheduled_at": now_ms + to_ms(delay)}
    raise TypeError(f"not an Outcome: {outcome!r}")
