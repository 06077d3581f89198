"""Transactions of the SQLite broker's schedule verbs: list, put, remove, pause and fire.

Each write is the body of one BEGIN IMMEDIATE transaction run by Database.write, so the fence
of fire (read the cursor, enqueue, move the cursor) holds against every other process: the
write lock is taken before the cursor is read. The jobs of a firing go through writes.enqueue,
the same insert as enqueue_many.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

import msgspec

from errands.brokers.contract import (
    SKIPPED_KEEP,
    Enqueued,
    Firing,
    ScheduleEntry,
    ScheduleRecord,
    SkippedSlots,
)
from errands.brokers.sqlite import writes
from errands.brokers.sqlite.rows import schedule_from_row
from errands.brokers.sqlite.sql import Q, as_json
from errands.brokers.values import ms_at, skipped_json

# Stored records are carried over as raw JSON, so a firing never rewrites the older ones.
_raw_records: Final = msgspec.json.Decoder(list[msgspec.Raw])
_encode: Final = msgspec.json.Encoder().encode


def select(connection: sqlite3.Connection, names: Sequence[str] | None) -> list[ScheduleRecord]:
    """The schedules of `names` that exist (all when None), by name."""
    params = {"names": None if names is None else as_json(names)}
    return [schedule_from_row(row) for row in connection.execute(Q["schedules_select"], params)]


def put(
    connection: sqlite3.Connection, entries: Sequence[ScheduleEntry], replace: bool, now_ms: int
) -> list[bool]:
    """Store new entries and, with `replace`, changed definitions, in order; True for each
    entry that changed something."""
    written: list[bool] = []
    for entry in entries:
        params = {"name": entry.name, "definition": entry.definition, "replace": replace}
        changed = connection.execute(Q["schedule_put"], {**params, "now": now_ms}).rowcount
        written.append(changed == 1)
    return written


def remove(connection: sqlite3.Connection, names: Sequence[str]) -> int:
    """Delete the schedules of `names`; returns how many existed."""
    return connection.execute(Q["schedules_remove"], {"names": as_json(names)}).rowcount


def pause(connection: sqlite3.Connection, names: Sequence[str], paused: bool, now_ms: int) -> int:
    """Set the paused flag of `names`; returns how many changed."""
    params = {"names": as_json(names), "paused": paused, "now": now_ms}
    return connection.execute(Q["schedules_pause"], params).rowcount


def fire(connection: sqlite3.Connection, firing: Firing, now_ms: int) -> list[Enqueued] | None:
    """Apply `firing` if its schedule runs and still has its cursor: enqueue its specs, move
    the cursor, record the run and the skipped slots. Returns the specs' fates, or None (and
    nothing written) when the fence does not hold."""
    fence = {"name": firing.name, "cursor": ms_at(firing.cursor)}
    held = connection.execute(Q["schedule_holding"], fence).fetchone()
    if held is None:
        return None
    enqueued = writes.enqueue(connection, firing.specs, now_ms) if firing.specs else []
    params = {
        **fence,
        "advance_to": ms_at(firing.advance_to),
        "ran": bool(enqueued),
        "last_slot": None if firing.last_slot is None else ms_at(firing.last_slot),
        "last_job_id": enqueued[-1].job_id if enqueued else None,
        "now": now_ms,
        "skipped": _appended(held["skipped"], firing.skipped),
    }
    connection.execute(Q["schedule_advance"], params)
    return enqueued


def _appended(stored: str, skipped: Sequence[SkippedSlots]) -> str:
    """The stored JSON array of skipped-slots records with `skipped` appended, keeping the
    newest SKIPPED_KEEP."""
    if not skipped:
        return stored
    new = [msgspec.Raw(skipped_json(record)) for record in skipped]
    return _encode([*_raw_records.decode(stored), *new][-SKIPPED_KEEP:]).decode()
