"""The memory broker's schedules: records in a dict, each verb of the contract literally.

The reference for how every broker stores schedules; the jobs a firing enqueues go through the
broker's own insert, so this module holds schedule records only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from errands.brokers.contract import (
    SKIPPED_KEEP,
    Firing,
    ScheduleEntry,
    ScheduleRecord,
)
from errands.job import JobId


class ScheduleTable:
    """Schedule records by name."""

    def __init__(self) -> None:
        self.records: dict[str, ScheduleRecord] = {}

    def select(self, names: Sequence[str] | None) -> list[ScheduleRecord]:
        """The records of `names` (all when None), by name."""
        wanted = self.records.keys() if names is None else set(names) & self.records.keys()
        return [self.records[name] for name in sorted(wanted)]

    def put(self, entries: Sequence[ScheduleEntry], *, replace_: bool, now: datetime) -> list[bool]:
        """Store new entries and, with `replace_`, changed definitions; see Broker.put_schedules."""
        written: list[bool] = []
        for entry in entries:
            old = self.records.get(entry.name)
            if old is None:
                self.records[entry.name] = ScheduleRecord(
                    entry.name, entry.definition, False, now, now, now
                )
            elif replace_ and old.definition != entry.definition:
                self.records[entry.name] = replace(
                    old, definition=entry.definition, cursor=now, updated_at=now
                )
            else:
                written.append(False)
                continue
            written.append(True)
        return written

    def remove(self, names: Sequence[str]) -> int:
        """Delete the records of `names`; how many existed."""
        return sum(self.records.pop(name, None) is not None for name in set(names))

    def pause(self, names: Sequence[str], *, paused: bool, now: datetime) -> int:
        """Set the paused flag; resuming moves the cursor to now."""
        changed = 0
        for name in set(names):
            old = self.records.get(name)
            if old is None or old.paused == paused:
                continue
            cursor = old.cursor if paused else now
            self.records[name] = replace(old, paused=paused, cursor=cursor, updated_at=now)
            changed += 1
        return changed

    def holds(self, firing: Firing) -> bool:
        """Whether `firing` may apply: the schedule exists, runs and still has its cursor."""
        record = self.records.get(firing.name)
        return record is not None and not record.paused and record.cursor == firing.cursor

    def advance(self, firing: Firing, last_job_id: JobId | None, now: datetime) -> None:
        """Move the cursor and record the run and the skipped slots of a firing that holds."""
        record = self.records[firing.name]
        skipped = (record.skipped + firing.skipped)[-SKIPPED_KEEP:]
        record = replace(record, cursor=firing.advance_to, skipped=skipped)
        if firing.specs:
            record = replace(
                record, last_slot=firing.last_slot, last_job_id=last_job_id, last_fired_at=now
            )
        self.records[firing.name] = record
