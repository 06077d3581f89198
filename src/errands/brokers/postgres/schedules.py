"""Schedules on PostgreSQL: the rows of the `schedules` table (0002_schedules.sql) and the
verbs that read and write them, each on a connection the broker lends.

Every verb is one statement (queries.sql) but fire, which is one transaction: the fence (the
schedule row moves only if it still has the firing's cursor, and stays locked until commit),
then the firing's jobs through the broker's own enqueue, then the last run. Jobs and schedule
land together or not at all, and a firing that lost the race to another stores nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg

from errands.brokers.contract import (
    SKIPPED_KEEP,
    Enqueued,
    Firing,
    ScheduleEntry,
    ScheduleRecord,
)
from errands.brokers.postgres.pool import Connection
from errands.brokers.postgres.sql import Now, Q
from errands.brokers.values import skipped_from_json, skipped_json
from errands.job import JobSpec

#: The broker's enqueue, run on the firing's connection inside its transaction.
Enqueue = Callable[[Connection, Sequence[JobSpec]], Awaitable[list[Enqueued]]]


async def select(connection: Connection, names: Sequence[str] | None) -> list[ScheduleRecord]:
    """The schedules of `names` (all when None), by name; see Broker.schedules."""
    wanted = None if names is None else list(names)
    cursor = await connection.execute(Q["schedules_select"], {"names": wanted})
    return [_record(row) for row in await cursor.fetchall()]


async def put(
    connection: Connection, entries: Sequence[ScheduleEntry], *, replace: bool, now: Now
) -> list[bool]:
    """Store new entries and, with `replace`, changed definitions, in one statement; see
    Broker.put_schedules.

    A name given more than once is settled here as if its entries were stored one by one, in
    order: the statement gets the definition each name ends with."""
    if not entries:
        return []
    final: dict[str, str] = {}
    varying: set[str] = set()
    for entry in entries:
        if entry.name not in final:
            final[entry.name] = entry.definition
        elif replace and final[entry.name] != entry.definition:
            final[entry.name] = entry.definition
            varying.add(entry.name)
    cursor = await connection.execute(
        Q["schedules_put"],
        {
            "names": list(final),
            "definitions": list(final.values()),
            "varying": list(varying),
            "replace": replace,
            "now": now,
        },
    )
    found = await cursor.fetchall()
    current = {name: before for name, before, _ in found}
    written = {name for name, _, was_written in found if was_written}
    changed: list[bool] = []
    for entry in entries:
        before = current[entry.name]
        # A name the statement left alone changed nothing, even one that did not exist when
        # it began: a racing writer stored it first.
        change = entry.name in written and (
            before is None or (replace and before != entry.definition)
        )
        if change:
            current[entry.name] = entry.definition
        changed.append(change)
    return changed


async def remove(connection: Connection, names: Sequence[str]) -> int:
    """Delete the schedules of `names`, not their jobs; how many existed."""
    cursor = await connection.execute(Q["schedules_remove"], {"names": list(names)})
    return await _count(cursor)


async def pause(connection: Connection, names: Sequence[str], *, paused: bool, now: Now) -> int:
    """Set the paused flag (resuming moves the cursor to now); how many schedules changed."""
    cursor = await connection.execute(
        Q["schedules_pause"], {"names": list(names), "paused": paused, "now": now}
    )
    return await _count(cursor)


async def fire(connection: Connection, firing: Firing, *, now: Now, enqueue: Enqueue) -> bool:
    """Apply `firing` if the schedule runs and still has its cursor, in one transaction: move
    the cursor, record the skipped slots, enqueue the jobs and record the last run. False:
    nothing changed. See Broker.fire."""
    async with connection.transaction():
        cursor = await connection.execute(
            Q["schedule_fire"],
            {
                "name": firing.name,
                "cursor": firing.cursor,
                "advance_to": firing.advance_to,
                "skipped": [skipped_json(one) for one in firing.skipped],
                "keep": SKIPPED_KEEP,
            },
        )
        if await cursor.fetchone() is None:
            return False
        if firing.specs:
            stored = await enqueue(connection, firing.specs)
            await connection.execute(
                Q["schedule_ran"],
                {
                    "name": firing.name,
                    "last_slot": firing.last_slot,
                    "last_job_id": stored[-1].job_id,
                    "now": now,
                },
            )
    return True


def _record(row: tuple[Any, ...]) -> ScheduleRecord:
    """A row of schedules_select (its columns, in order) as a record."""
    (
        name,
        definition,
        paused,
        cursor,
        created_at,
        updated_at,
        last_slot,
        last_job_id,
        last_fired_at,
        skipped,
    ) = row
    return ScheduleRecord(
        name=name,
        definition=definition,
        paused=paused,
        cursor=cursor,
        created_at=created_at,
        updated_at=updated_at,
        last_slot=last_slot,
        last_job_id=last_job_id,
        last_fired_at=last_fired_at,
        skipped=skipped_from_json(skipped),
    )


async def _count(cursor: psycopg.AsyncCursor[Any]) -> int:
    found = await cursor.fetchone()
    assert found is not None  # a count always has its row
    return int(found[0])
