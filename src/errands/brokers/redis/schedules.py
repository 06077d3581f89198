"""Schedules to script arguments and script replies back to records: what the schedule scripts
(scripts/schedules.lua, put_schedules.lua, remove_schedules.lua, pause_schedules.lua and
fire.lua) take and return, so broker.py only calls them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import msgspec

from errands.brokers.contract import (
    SKIPPED_KEEP,
    Firing,
    ScheduleEntry,
    ScheduleRecord,
    SkippedSlots,
)
from errands.brokers.redis.keys import SCHEDULE_FIELDS
from errands.brokers.redis.records import spec_args
from errands.brokers.values import at_ms, ms_at, skipped_from_json, skipped_json

#: A schedule's reply: its name, then SCHEDULE_FIELDS.
REPLY: Final = len(SCHEDULE_FIELDS) + 1
_AT: Final = {name: index + 1 for index, name in enumerate(SCHEDULE_FIELDS)}


def put_args(entries: Sequence[ScheduleEntry], *, replace: bool) -> list[Any]:
    """The put_schedules script's ARGV after `now`: the replace flag, then name and definition
    of each entry."""
    args: list[Any] = [1 if replace else 0]
    for entry in entries:
        args += (entry.name, entry.definition)
    return args


def fire_args(firing: Firing) -> list[Any]:
    """The fire script's ARGV after `now`: the schedule and its cursor, what to record, then
    the specs as the enqueue script takes them."""
    skipped = "[" + ",".join(map(skipped_json, firing.skipped)) + "]" if firing.skipped else ""
    return [
        firing.name,
        ms_at(firing.cursor),
        ms_at(firing.advance_to),
        "" if firing.last_slot is None else ms_at(firing.last_slot),
        skipped,
        SKIPPED_KEEP,
        *spec_args(firing.specs, limits=True),
    ]


def schedule_records(reply: Sequence[Any]) -> list[ScheduleRecord]:
    """Records from a schedules reply: a name and SCHEDULE_FIELDS each."""
    return [_record(reply[start : start + REPLY]) for start in range(0, len(reply), REPLY)]


def _record(values: Sequence[Any]) -> ScheduleRecord:
    def text(name: str) -> str | None:
        value: bytes | None = values[_AT[name]]
        return None if value is None else value.decode()

    def instant(name: str) -> datetime | None:
        value: bytes | None = values[_AT[name]]
        return None if value is None else at_ms(int(value))

    def required(name: str) -> datetime:
        return at_ms(int(values[_AT[name]]))

    skipped = values[_AT["skipped"]]
    return ScheduleRecord(
        name=values[0].decode(),
        definition=text("definition") or "",
        paused=values[_AT["paused"]] == b"1",
        cursor=required("cursor"),
        created_at=required("created_at"),
        updated_at=required("updated_at"),
        last_slot=instant("last_slot"),
        last_job_id=text("last_job_id"),
        last_fired_at=instant("last_fired_at"),
        skipped=() if skipped is None else _skipped(skipped),
    )


def _skipped(text: bytes) -> tuple[SkippedSlots, ...]:
    """Skipped slots are for people: a garbled list reads as empty, not as a failure."""
    try:
        return skipped_from_json(text)
    except (ValueError, TypeError, KeyError, msgspec.DecodeError):
        return ()
