"""Leases on PostgreSQL: claim, extend and finish, the statements a worker runs about the jobs
it takes and holds, each one statement on a connection the broker lends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from errands.brokers.contract import Claimed, ClaimOptions, Extended, WorkerInfo
from errands.brokers.postgres import limits, rows
from errands.brokers.postgres.pool import Connection
from errands.brokers.postgres.sql import Scope, fetch
from errands.job import JobId, Progress
from errands.lease import Lease
from errands.outcome import Outcome


async def claim(
    connection: Connection, scope: Scope, options: ClaimOptions, promote_limit: int
) -> list[Claimed]:
    """Promote up to `promote_limit` due jobs and lease up to `options.n` jobs; see
    Broker.claim."""
    found, names = await fetch(
        connection,
        "claim",
        {
            "queues": list(dict.fromkeys(options.queues)),
            "n": options.n,
            "lease": options.lease,
            "worker_id": options.worker_id,
            "promote_limit": promote_limit,
            "now": scope.now(),
            "ready": scope.url.ready_channel,
        },
    )
    claimed = rows.claimed_from_rows([row for row in found if row[0] is not None], names)
    if claimed or not await limits.waiting(connection, options.queues):
        return claimed
    return await limits.claim(connection, scope, options)


async def extend(
    connection: Connection,
    scope: Scope,
    leases: Sequence[Lease],
    lease: timedelta,
    heartbeat: WorkerInfo,
    progress: Mapping[JobId, Progress],
) -> Extended:
    """Push back every held lease and record the heartbeat; see Broker.extend."""
    params = rows.extend_params(leases, progress, heartbeat)
    params.update(lease=lease, now=scope.now())
    found, _ = await fetch(connection, "extend", params)
    return rows.extended_from_rows(found, leases)


async def finish(connection: Connection, scope: Scope, outcomes: Sequence[Outcome]) -> list[bool]:
    """Apply every outcome whose lease holds; see Broker.finish. A second outcome for one lease
    in the same batch is refused, as it would be later."""
    first: dict[tuple[JobId, str], int] = {}
    for position, outcome in enumerate(outcomes):
        first.setdefault((outcome.lease.job_id, outcome.lease.token), position)
    sent = sorted(first.values())
    params = rows.finish_params([outcomes[i] for i in sent])
    params.update(now=scope.now(), ready=scope.url.ready_channel, done=scope.url.done_channel)
    found, _ = await fetch(connection, "finish", params)
    applied, *_ = found[0]
    moved = {sent[position - 1] for position in applied}
    return [i in moved for i in range(len(outcomes))]
