"""plan(): which due slots run and which are recorded as skipped, for each misfire policy, at
a fake "now"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from errands import Schedule
from errands.brokers.contract import SkippedSlots
from errands.scheduling.misfire import LATE_AFTER, MAX_RUNS, Plan, plan
from errands.scheduling.schedule import MISFIRE_POLICIES, Misfire

#: The cursor of every test: the hourly schedule's slot at midnight was handled.
CURSOR = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def hourly(misfire: Misfire, **fields: Any) -> Schedule:
    """An hourly schedule with the given policy."""
    return Schedule(name="hourly", task="t", cron="@hourly", misfire=misfire, **fields)


def at(hours: float) -> datetime:
    """CURSOR plus `hours`."""
    return CURSOR + timedelta(hours=hours)


def planned(schedule: Schedule, now: datetime, cursor: datetime = CURSOR) -> Plan:
    """plan() where something is due."""
    step = plan(schedule, cursor, now)
    assert step is not None, f"nothing due in ({cursor}, {now}]"
    return step


@pytest.mark.parametrize("policy", MISFIRE_POLICIES)
def test_nothing_is_planned_before_the_next_slot(policy: Misfire) -> None:
    assert plan(hourly(policy), CURSOR, at(1) - timedelta(seconds=1)) is None
    assert plan(hourly(policy), CURSOR, CURSOR) is None  # the cursor's own slot was handled


@pytest.mark.parametrize("policy", MISFIRE_POLICIES)
def test_an_on_time_slot_runs_under_every_policy(policy: Misfire) -> None:
    for late in (timedelta(0), timedelta(seconds=1), timedelta(seconds=59)):
        step = planned(hourly(policy), at(1) + late)

        assert step == Plan(runs=(at(1),), skipped=(), advance_to=at(1)), late


def test_a_slot_exactly_late_after_old_is_still_on_time() -> None:
    step = planned(hourly("skip"), at(1) + LATE_AFTER)

    assert step.runs == (at(1),)


def test_skip_after_an_outage_runs_nothing_and_records_the_missed_slots() -> None:
    now = at(5.5)  # no scheduler ran for five and a half hours

    step = planned(hourly("skip"), now)

    assert step.runs == ()
    assert step.skipped == (SkippedSlots(at(1), at(5), 5, "missed", now),)
    assert step.advance_to == at(5)


def test_skip_still_runs_the_slot_that_is_on_time() -> None:
    now = at(5) + timedelta(seconds=30)

    step = planned(hourly("skip"), now)

    assert step.runs == (at(5),)
    assert step.skipped == (SkippedSlots(at(1), at(4), 4, "missed", now),)
    assert step.advance_to == at(5)


def test_once_after_an_outage_runs_the_newest_missed_slot_and_coalesces_the_rest() -> None:
    now = at(5.5)

    step = planned(hourly("once"), now)

    assert step.runs == (at(5),)
    assert step.skipped == (SkippedSlots(at(1), at(4), 4, "coalesced", now),)
    assert step.advance_to == at(5)


def test_once_runs_a_single_missed_slot() -> None:
    step = planned(hourly("once"), at(1.5))

    assert (step.runs, step.skipped) == ((at(1),), ())


def test_once_runs_the_on_time_slot_and_coalesces_the_missed_ones() -> None:
    now = at(5) + timedelta(seconds=30)

    step = planned(hourly("once"), now)

    assert step.runs == (at(5),)
    assert step.skipped == (SkippedSlots(at(1), at(4), 4, "coalesced", now),)


def test_all_after_an_outage_runs_every_missed_slot_oldest_first() -> None:
    step = planned(hourly("all"), at(5.5))

    assert step.runs == (at(1), at(2), at(3), at(4), at(5))
    assert step.skipped == ()
    assert step.advance_to == at(5)


def test_misfire_grace_lets_only_recent_slots_run_and_records_the_rest_expired() -> None:
    now = at(5.5)

    step = planned(hourly("all", misfire_grace=timedelta(hours=2)), now)

    assert step.runs == (at(4), at(5))  # within two hours of 05:30
    assert step.skipped == (SkippedSlots(at(1), at(3), 3, "expired", now),)
    assert step.advance_to == at(5)


@pytest.mark.parametrize("policy", MISFIRE_POLICIES)
def test_misfire_grace_bounds_every_policy(policy: Misfire) -> None:
    now = at(5.5)

    step = planned(hourly(policy, misfire_grace=timedelta(minutes=20)), now)

    assert step.runs == ()
    assert step.skipped == (SkippedSlots(at(1), at(5), 5, "expired", now),)
    assert step.advance_to == at(5)


def test_a_day_of_one_second_slots_catches_up_max_runs_per_plan() -> None:
    every_second = Schedule(
        name="tick", task="t", every=timedelta(seconds=1), misfire="all", start=CURSOR
    )
    now = at(24)

    first = planned(every_second, now)

    assert len(first.runs) == MAX_RUNS
    assert first.runs[0] == CURSOR + timedelta(seconds=1)
    assert first.advance_to == first.runs[-1] == CURSOR + timedelta(seconds=MAX_RUNS)
    # The scheduler plans again from where the last one stopped: no slot twice, none lost.
    runs, cursor = list(first.runs), first.advance_to
    while (step := plan(every_second, cursor, now)) is not None:
        assert step.runs[0] == cursor + timedelta(seconds=1)
        runs.extend(step.runs)
        cursor = step.advance_to
    assert cursor == now
    assert len(runs) == len(set(runs)) == 24 * 3600


def slots_between(schedule: Schedule, after: datetime, until: datetime) -> list[datetime]:
    """Every slot in (after, until]."""
    return list(schedule.slots(after, until))


SCHEDULES = st.one_of(
    st.builds(
        lambda seconds, policy, grace: Schedule(
            name="s",
            task="t",
            every=timedelta(seconds=seconds),
            misfire=policy,
            misfire_grace=grace,
        ),
        st.sampled_from([1, 7, 60, 90, 300, 3600]),
        st.sampled_from(MISFIRE_POLICIES),
        st.one_of(st.none(), st.integers(1, 10_000).map(lambda s: timedelta(seconds=s))),
    ),
    st.builds(
        lambda cron, policy, grace: Schedule(
            name="s",
            task="t",
            cron=cron[0],
            tz=cron[1],
            misfire=policy,
            misfire_grace=grace,
        ),
        st.sampled_from(
            [
                ("*/15 * * * *", "UTC"),
                ("0 9 * * 1-5", "Europe/Berlin"),
                ("30 2 * * *", "Europe/Berlin"),
                ("30 1 * * *", "America/New_York"),
            ]
        ),
        st.sampled_from(MISFIRE_POLICIES),
        st.one_of(st.none(), st.integers(1, 200_000).map(lambda s: timedelta(seconds=s))),
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    schedule=SCHEDULES,
    cursor_offset=st.integers(0, 400 * 86400),
    gap=st.integers(0, 3 * 86400),
)
def test_a_plan_accounts_for_every_due_slot_and_never_passes_now(
    schedule: Schedule, cursor_offset: int, gap: int
) -> None:
    cursor = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=cursor_offset)
    now = cursor + timedelta(seconds=gap)
    if schedule.every == timedelta(seconds=1):
        now = min(now, cursor + timedelta(hours=2))  # keep the slot count quick to list

    step = plan(schedule, cursor, now)

    due = slots_between(schedule, cursor, now)
    if not due:
        assert step is None
        return
    assert step is not None
    assert cursor < step.advance_to <= now
    handled = slots_between(schedule, cursor, step.advance_to)
    assert list(step.runs) == sorted(set(step.runs))
    assert set(step.runs) <= set(handled)
    assert len(step.runs) + sum(s.count for s in step.skipped) == len(handled)
    for skipped in step.skipped:
        assert cursor < skipped.first <= skipped.last <= step.advance_to
        assert skipped.recorded_at == now
    if len(step.runs) < MAX_RUNS:
        assert step.advance_to == due[-1]  # everything due was handled
        grace = schedule.misfire_grace
        kept = [slot for slot in due if grace is None or now - slot <= grace]
        missed = [slot for slot in kept if now - slot > LATE_AFTER]
        if schedule.misfire == "once" and missed:
            assert list(step.runs) == [due[-1]]  # one run in place of all of them
        else:
            assert {slot for slot in kept if now - slot <= LATE_AFTER} <= set(step.runs)
    late_runs = [slot for slot in step.runs if now - slot > LATE_AFTER]
    if schedule.misfire == "skip":
        assert late_runs == []
    if schedule.misfire == "once":
        assert len(late_runs) <= 1
    if schedule.misfire_grace is not None:
        assert all(now - slot <= schedule.misfire_grace for slot in step.runs)
