"""Missed runs: which of a schedule's due slots run and which are skipped, decided once here.

A slot is on time while it is at most LATE_AFTER old: a running scheduler reaches it within
moments, so on-time slots always run. An older slot was missed (no scheduler ran, or none
reached the broker); the schedule's policy decides:

- "skip": no missed slot runs; they are recorded as skipped ("missed").
- "once": one run in place of all of them, for the newest due slot (an on-time one if there
  is one); every older due slot is recorded ("coalesced").
- "all": every missed slot runs, oldest first.

`misfire_grace`, when given, bounds every policy: a slot older than it never runs and is
recorded ("expired").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from errands.brokers.contract import SkippedSlots
from errands.scheduling.schedule import Schedule

#: A slot this late is missed, not merely due (Quartz's misfire threshold has the same value).
LATE_AFTER: Final = timedelta(seconds=60)
#: Runs one firing may enqueue: a schedule with more due slots ("all" after a long outage)
#: catches up in several firings, each one atomic write.
MAX_RUNS: Final = 1000
#: Below the resolution of any slot (whole milliseconds): `x - _TICK` excludes `x` itself.
_TICK: Final = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Plan:
    """One firing: the slots to run (oldest first), the skipped records, the new cursor."""

    runs: tuple[datetime, ...]
    skipped: tuple[SkippedSlots, ...]
    advance_to: datetime


def plan(schedule: Schedule, cursor: datetime, now: datetime) -> Plan | None:
    """What to do with the slots in (cursor, now]; None when none is due."""
    newest = schedule.newest(cursor, now)
    if newest is None:
        return None
    skipped: list[SkippedSlots] = []
    floor = cursor
    if schedule.misfire_grace is not None:
        floor = _skip(schedule, floor, now - schedule.misfire_grace, "expired", now, skipped)
    late = _newest_before(schedule, floor, now - LATE_AFTER)  # the newest missed slot
    if late is not None and schedule.misfire == "skip":
        floor = _skip(schedule, floor, late, "missed", now, skipped, inclusive=True)
    elif late is not None and schedule.misfire == "once":
        floor = _skip(schedule, floor, newest, "coalesced", now, skipped)
    runs = []
    for slot in schedule.slots(floor, now):
        runs.append(slot)
        if len(runs) == MAX_RUNS:
            break
    advance_to = runs[-1] if runs else floor
    return Plan(tuple(runs), tuple(skipped), advance_to)


def _newest_before(schedule: Schedule, after: datetime, before: datetime) -> datetime | None:
    """The newest slot in (after, before), or None: a slot exactly at `before` is not in it."""
    return schedule.newest(after, before - _TICK) if before - _TICK > after else None


def _skip(
    schedule: Schedule,
    after: datetime,
    before: datetime,
    reason: str,
    now: datetime,
    skipped: list[SkippedSlots],
    *,
    inclusive: bool = False,
) -> datetime:
    """Record the slots in (after, before) (or (after, before] when `inclusive`) as skipped;
    returns the last one recorded, or `after` when there were none."""
    if before <= after:
        return after
    first, last, count = None, None, 0
    for slot in schedule.slots(after, before):
        if slot == before and not inclusive:
            break
        first = first or slot
        last, count = slot, count + 1
    if first is None or last is None:
        return after
    skipped.append(SkippedSlots(first, last, count, reason, now))
    return last
