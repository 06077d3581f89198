"""Stored schedules: definitions kept as written, a cursor that only a firing holding it can
move, each firing's jobs and records in one atomic write, pause and resume."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from errands.brokers.contract import (
    SKIPPED_KEEP,
    Broker,
    Firing,
    ScheduleEntry,
    ScheduleRecord,
    SkippedSlots,
)
from errands.job import JobState
from errands.testing import FakeClock

from .conftest import enqueue, make_broker, spec

DEFINITION = '{"task":"report","cron":"0 9 * * 1-5","tz":"Europe/Berlin","note":"Grüße ✓"}'


async def one(broker: Broker, name: str) -> ScheduleRecord:
    """The stored schedule `name`; fails the test if it is gone."""
    records = await broker.schedules([name])
    assert [r.name for r in records] == [name]
    return records[0]


def firing(record: ScheduleRecord, slots: list[datetime], **fields: object) -> Firing:
    """A firing of `record` that runs one job per slot and advances to the last slot."""
    specs = tuple(spec(task="report", scheduled_at=slot) for slot in slots)
    return Firing(
        name=record.name,
        cursor=record.cursor,
        advance_to=slots[-1] if slots else record.cursor,
        specs=specs,
        last_slot=slots[-1] if slots else None,
        **fields,  # type: ignore[arg-type]
    )


async def test_a_new_schedule_starts_unpaused_with_its_cursor_at_now(
    broker: Broker, clock: FakeClock
) -> None:
    assert await broker.put_schedules([ScheduleEntry("daily", DEFINITION)], replace=False) == [True]
    record = await one(broker, "daily")
    assert record.definition == DEFINITION
    assert (record.paused, record.cursor, record.created_at) == (False, clock.now(), clock.now())
    assert (record.last_slot, record.last_job_id, record.skipped) == (None, None, ())


async def test_schedules_are_listed_by_name_and_unknown_names_left_out(broker: Broker) -> None:
    entries = [ScheduleEntry(name, DEFINITION) for name in ("b", "c", "a")]
    assert await broker.put_schedules(entries, replace=False) == [True, True, True]
    assert [r.name for r in await broker.schedules()] == ["a", "b", "c"]
    assert [r.name for r in await broker.schedules(["c", "nope", "a"])] == ["a", "c"]
    assert await broker.schedules(["nope"]) == []


async def test_put_without_replace_keeps_an_existing_definition(
    broker: Broker, clock: FakeClock
) -> None:
    await broker.put_schedules([ScheduleEntry("daily", DEFINITION)], replace=False)
    clock.advance(timedelta(minutes=5))
    assert await broker.put_schedules([ScheduleEntry("daily", "{}")], replace=False) == [False]
    record = await one(broker, "daily")
    assert (record.definition, record.cursor) == (DEFINITION, clock.now() - timedelta(minutes=5))


async def test_replacing_with_the_same_definition_changes_nothing(
    broker: Broker, clock: FakeClock
) -> None:
    await broker.put_schedules([ScheduleEntry("daily", DEFINITION)], replace=False)
    before = await one(broker, "daily")
    clock.advance(timedelta(hours=1))
    assert await broker.put_schedules([ScheduleEntry("daily", DEFINITION)], replace=True) == [False]
    assert await one(broker, "daily") == before


async def test_a_changed_definition_starts_afresh_from_now_and_keeps_its_flags(
    broker: Broker, clock: FakeClock
) -> None:
    start = clock.now()
    await broker.put_schedules([ScheduleEntry("daily", DEFINITION)], replace=False)
    await broker.pause_schedules(["daily"], paused=True)
    clock.advance(timedelta(hours=1))
    assert await broker.put_schedules([ScheduleEntry("daily", '{"v":2}')], replace=True) == [True]
    record = await one(broker, "daily")
    assert (record.definition, record.cursor, record.paused) == ('{"v":2}', clock.now(), True)
    assert (record.created_at, record.updated_at) == (start, clock.now())


async def test_remove_deletes_the_schedule_but_not_its_jobs(
    broker: Broker, clock: FakeClock
) -> None:
    await broker.put_schedules([ScheduleEntry("daily", DEFINITION)], replace=False)
    record = await one(broker, "daily")
    clock.advance(timedelta(minutes=1))
    step = firing(record, [clock.now()])
    assert await broker.fire(step)
    assert await broker.remove_schedules(["daily", "nope"]) == 1
    assert await broker.schedules() == []
    assert [job.state for job in await broker.get([step.specs[0].id])] == [JobState.AVAILABLE]
    assert await broker.remove_schedules(["daily"]) == 0


async def test_fire_enqueues_its_jobs_and_moves_the_cursor(
    broker: Broker, clock: FakeClock
) -> None:
    await broker.put_schedules([ScheduleEntry("daily", DEFINITION)], replace=False)
    record = await one(broker, "daily")
    slots = [clock.now() + timedelta(minutes=m) for m in (1, 2)]
    clock.advance(timedelta(minutes=2, seconds=3))
    step = firing(record, slots)
    assert await broker.fire(step) is True
    jobs = await broker.get([s.id for s in step.specs])
    assert [j.state for j in jobs] == [JobState.AVAILABLE, JobState.AVAILABLE]
    after = await one(broker, "daily")
    assert (after.cursor, after.last_slot, after.last_job_id) == (
        slots[-1],
        slots[-1],
        step.specs[-1].id,
    )
    assert after.last_fired_at == clock.now()


async def test_a_firing_whose_cursor_moved_changes_nothing(
    broker: Broker, clock: FakeClock
) -> None:
    await broker.put_schedules([ScheduleEntry("daily", DEFINITION)], replace=False)
    stale = await one(broker, "daily")
    clock.advance(timedelta(minutes=1))
    assert await broker.fire(firing(stale, [clock.now()]))
    late = firing(stale, [clock.now()])
    assert await broker.fire(late) is False
    assert await broker.get([late.specs[0].id]) == []
    assert (await broker.counts()).total(JobState.AVAILABLE) == 1


async def test_firing_an_unknown_schedule_changes_nothing(broker: Broker, clock: FakeClock) -> None:
    ghost = ScheduleRecord("ghost", "{}", False, clock.now(), clock.now(), clock.now())
    step = firing(ghost, [clock.now()])
    assert await broker.fire(step) is False
    assert await broker.get([step.specs[0].id]) == []


async def test_of_concurrent_firings_from_one_cursor_exactly_one_applies(
    broker: Broker, clock: FakeClock
) -> None:
    await broker.put_schedules([ScheduleEntry("daily", DEFINITION)], replace=False)
    record = await one(broker, "daily")
    clock.advance(timedelta(minutes=1))
    steps = [firing(record, [clock.now()]) for _ in range(8)]
    applied = await asyncio.gather(*[broker.fire(step) for step in steps])
    assert sorted(applied) == [False] * 7 + [True]
    stored = await broker.get([step.specs[0].id for step in steps])
    assert len(stored) == 1


@pytest.mark.needs("cross_process")
async def test_two_brokers_on_one_database_fire_a_slot_once(
    broker: Broker, broker_kind: str, clock: FakeClock, tmp_path: Path
) -> None:
    other = make_broker(broker_kind, clock, tmp_path)
    await other.open()
    try:
        await broker.put_schedules([ScheduleEntry("daily", DEFINITION)], replace=False)
        record = await one(other, "daily")
        clock.advance(timedelta(minutes=1))
        steps = [firing(record, [clock.now()]) for _ in range(6)]
        applied = await asyncio.gather(
            *[(broker if i % 2 else other).fire(step) for i, step in enumerate(steps)]
        )
        assert applied.count(True) == 1
        assert (await other.counts()).total(JobState.AVAILABLE) == 1
    finally:
        await other.close()


async def test_a_paused_schedule_refuses_firings_and_resumes_from_now(
    broker: Broker, clock: FakeClock
) -> None:
    await broker.put_schedules([ScheduleEntry("daily", DEFINITION)], replace=False)
    assert await broker.pause_schedules(["daily", "nope"], paused=True) == 1
    assert await broker.pause_schedules(["daily"], paused=True) == 0
    record = await one(broker, "daily")
    assert record.paused
    clock.advance(timedelta(hours=3))
    step = firing(record, [clock.now()])
    assert await broker.fire(step) is False
    assert await broker.get([step.specs[0].id]) == []
    assert await broker.pause_schedules(["daily"], paused=False) == 1
    resumed = await one(broker, "daily")
    assert (resumed.paused, resumed.cursor) == (False, clock.now())


async def test_skipped_slots_are_kept_newest_last_up_to_the_limit(
    broker: Broker, clock: FakeClock
) -> None:
    await broker.put_schedules([ScheduleEntry("often", DEFINITION)], replace=False)
    for i in range(SKIPPED_KEEP + 3):
        record = await one(broker, "often")
        first = record.cursor + timedelta(minutes=1)
        last = record.cursor + timedelta(minutes=10)
        clock.set(last + timedelta(seconds=1))
        skipped = SkippedSlots(first, last, 10, f"missed {i}", clock.now())
        step = Firing("often", record.cursor, last, skipped=(skipped,))
        assert await broker.fire(step)
    record = await one(broker, "often")
    assert len(record.skipped) == SKIPPED_KEEP
    assert [s.reason for s in record.skipped] == [f"missed {i}" for i in range(3, SKIPPED_KEEP + 3)]
    newest = record.skipped[-1]
    assert (newest.last - newest.first, newest.count, newest.recorded_at) == (
        timedelta(minutes=9),
        10,
        clock.now(),
    )
    assert (record.last_slot, record.last_job_id) == (None, None)  # skips are not runs


async def test_a_firing_with_a_duplicate_key_records_the_existing_job(
    broker: Broker, clock: FakeClock
) -> None:
    [owner] = await enqueue(broker, spec(task="report", idempotency_key="daily@09:00"))
    await broker.put_schedules([ScheduleEntry("daily", DEFINITION)], replace=False)
    record = await one(broker, "daily")
    slot = clock.now()
    clock.advance(timedelta(seconds=1))
    step = Firing(
        "daily",
        record.cursor,
        slot,
        specs=(spec(task="report", idempotency_key="daily@09:00"),),
        last_slot=slot,
    )
    assert await broker.fire(step)
    assert (await one(broker, "daily")).last_job_id == owner
    assert await broker.get([step.specs[0].id]) == []
