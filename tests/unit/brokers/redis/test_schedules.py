"""Schedules to the fire script's arguments and schedules replies back to records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from errands.brokers.contract import SKIPPED_KEEP, Firing, ScheduleRecord, SkippedSlots
from errands.brokers.redis.keys import SCHEDULE_FIELDS
from errands.brokers.redis.schedules import fire_args, schedule_records
from errands.brokers.values import ms_at, skipped_json
from errands.job import JobSpec

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def stored(**fields: bytes | None) -> list[bytes | None]:
    """A schedules reply of one schedule `daily` created at NOW, with `fields` set."""
    values: dict[str, bytes | None] = dict.fromkeys(SCHEDULE_FIELDS)
    ms = str(ms_at(NOW)).encode()
    values.update(definition=b"{}", paused=b"0", cursor=ms, created_at=ms, updated_at=ms)
    values.update(fields)
    return [b"daily", *(values[name] for name in SCHEDULE_FIELDS)]


def test_a_firing_without_specs_or_skips_sends_empty_markers() -> None:
    firing = Firing("daily", NOW, NOW + timedelta(minutes=1))

    assert fire_args(firing) == [
        "daily",
        ms_at(NOW),
        ms_at(NOW + timedelta(minutes=1)),
        "",
        "",
        SKIPPED_KEEP,
    ]


def test_a_firing_sends_its_skips_as_one_json_array_and_its_specs_as_enqueue_does() -> None:
    skipped = SkippedSlots(NOW, NOW, 1, "missed", NOW)
    spec = JobSpec(
        id="0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee", task="report", queue="default", payload=b"{}"
    )
    firing = Firing("daily", NOW, NOW, specs=(spec,), skipped=(skipped, skipped), last_slot=NOW)

    args = fire_args(firing)

    assert args[3:5] == [ms_at(NOW), f"[{skipped_json(skipped)},{skipped_json(skipped)}]"]
    assert args[6:8] == [spec.id, "report"]
    assert len(args) == 6 + 11  # eleven values per spec, its limits last


def test_a_new_schedule_reads_back_without_a_last_run() -> None:
    assert schedule_records(stored()) == [ScheduleRecord("daily", "{}", False, NOW, NOW, NOW)]


def test_a_garbled_skipped_list_reads_as_empty() -> None:
    [record] = schedule_records(stored(paused=b"1", skipped=b"[{oops"))

    assert (record.paused, record.skipped) == (True, ())
