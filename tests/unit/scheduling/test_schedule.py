"""Schedule: bad declarations fail naming the value, slots fall where cron (in a zone) or the
interval says, and a definition round-trips through the text brokers store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import errands
from errands import Schedule

BERLIN = ZoneInfo("Europe/Berlin")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """An aware UTC datetime from its fields."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def schedule(**fields: Any) -> Schedule:
    """A Schedule named "nightly" of task "reports.build" with `fields`."""
    return Schedule(name="nightly", task="reports.build", **fields)


# -- declaration errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"cron": "0 25 * * *"}, "'0 25 * * *'"),
        ({"cron": "61 * * * *"}, "'61 * * * *'"),
        ({"cron": "0 9 * *"}, "'0 9 * *'"),
        ({"cron": "0 0 9 * * 1"}, "'0 0 9 * * 1'"),
        ({"cron": "@fortnightly"}, "'@fortnightly'"),
        ({"cron": "@reboot"}, "'@reboot'"),
        ({"cron": "0 9 * * 1-5", "tz": "Mars/Olympus"}, "'Mars/Olympus'"),
        ({"cron": "0 9 * * 1-5", "tz": "CET+1"}, "'CET+1'"),
        ({"cron": "@daily", "every": timedelta(hours=1)}, "cron='@daily'"),
        ({}, "cron=None"),
        ({"every": timedelta(milliseconds=500)}, "microseconds=500000"),
        ({"every": timedelta(0)}, "timedelta(0)"),
        ({"every": 5}, "got 5"),
        ({"every": "5m"}, "'5m'"),
        ({"cron": "@daily", "misfire": "sometimes"}, "'sometimes'"),
        ({"cron": "@daily", "misfire_grace": timedelta(seconds=-1)}, "days=-1"),
        ({"cron": "@daily", "misfire_grace": timedelta(0)}, "timedelta(0)"),
        ({"every": timedelta(hours=1), "start": datetime(2026, 1, 1)}, "datetime(2026, 1, 1"),
        ({"cron": "@daily", "start": utc(2026, 1, 1)}, "start="),
    ],
)
def test_a_bad_declaration_raises_value_error_naming_the_bad_value(
    fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        schedule(**fields)


def test_an_unknown_alias_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown alias") as caught:
        schedule(cron="@fortnightly")

    assert "@hourly" in str(caught.value)
    assert "@yearly" in str(caught.value)


def test_arguments_json_cannot_carry_are_refused_naming_the_schedule() -> None:
    with pytest.raises(TypeError, match=r"arguments of schedule 'nightly' cannot be stored"):
        schedule(cron="@daily", args=(object(),))

    with pytest.raises(TypeError, match="'nightly'"):
        schedule(cron="@daily", kwargs={"lock": object()})


def test_app_periodic_refuses_arguments_that_do_not_fit_the_registered_task(
    app: errands.App,
) -> None:
    @app.task(name="greet")
    def greet(name: str, *, loud: bool = False) -> None: ...

    with pytest.raises(TypeError, match=r"task greet: .*unexpected keyword argument 'shout'"):
        app.periodic(greet, every=timedelta(minutes=1), kwargs={"name": "x", "shout": True})
    with pytest.raises(TypeError, match=r"task greet: missing a required argument: 'name'"):
        app.periodic(greet, every=timedelta(minutes=1))
    with pytest.raises(TypeError, match=r"task greet: too many positional arguments"):
        app.periodic(greet, every=timedelta(minutes=1), args=("a", "b"))
    assert app.schedules.declared == {}


def test_the_decorator_form_refuses_arguments_that_do_not_fit_the_function(
    app: errands.App,
) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'x'"):

        @app.periodic(every=timedelta(minutes=1), kwargs={"x": 1})  # type: ignore[untyped-decorator]
        @app.task(name="noargs")
        def noargs() -> None: ...

    assert app.schedules.declared == {}


def test_the_decorator_form_refuses_a_bad_value_before_it_decorates(app: errands.App) -> None:
    with pytest.raises(ValueError, match="'bogus'"):
        app.periodic(cron="bogus")

    assert app.registry == {}


def test_app_periodic_returns_the_schedule_or_the_task_and_declares_it(
    app: errands.App,
) -> None:
    @app.periodic(cron="@daily", tz="Europe/Berlin")  # type: ignore[untyped-decorator]
    @app.task(name="cleanup")
    def cleanup() -> None: ...

    made = app.periodic("other.app.task", every=timedelta(minutes=5), name="remote")

    assert isinstance(cleanup, errands.Task)
    assert isinstance(made, Schedule)
    assert (made.task, made.every, made.source) == ("other.app.task", timedelta(minutes=5), "code")
    declared = app.schedules.declared
    assert sorted(declared) == ["cleanup", "remote"]
    assert (declared["cleanup"].task, declared["cleanup"].tz) == ("cleanup", "Europe/Berlin")


def test_a_second_different_schedule_under_a_declared_name_is_refused(app: errands.App) -> None:
    app.periodic("a.task", cron="@daily", name="shared")

    with pytest.raises(errands.ScheduleExists, match="'shared'"):
        app.periodic("a.task", cron="@hourly", name="shared")
    assert app.schedules.declared["shared"].cron == "@daily"


def test_an_alias_with_surrounding_spaces_is_refused_or_fires() -> None:
    try:
        hourly = schedule(cron=" @hourly ")
    except ValueError:
        return
    assert hourly.next_after(utc(2026, 3, 11, 10, 15)) == utc(2026, 3, 11, 11)


# -- cron ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("@hourly", utc(2026, 3, 11, 11)),
        ("@daily", utc(2026, 3, 12)),
        ("@midnight", utc(2026, 3, 12)),
        ("@weekly", utc(2026, 3, 15)),  # the next Sunday
        ("@monthly", utc(2026, 4, 1)),
        ("@yearly", utc(2027, 1, 1)),
        ("@annually", utc(2027, 1, 1)),
    ],
)
def test_aliases_fire_at_their_next_time(alias: str, expected: datetime) -> None:
    wednesday_morning = utc(2026, 3, 11, 10, 15)

    assert schedule(cron=alias).next_after(wednesday_morning) == expected


def test_an_alias_fires_at_local_midnight_in_its_zone() -> None:
    daily = schedule(cron="@daily", tz="Europe/Berlin")

    assert daily.next_after(utc(2026, 1, 10, 12)) == utc(2026, 1, 10, 23)  # 00:00 CET
    assert daily.next_after(utc(2026, 7, 10, 12)) == utc(2026, 7, 10, 22)  # 00:00 CEST


def test_weekday_mornings_in_berlin_skip_the_weekend_in_winter() -> None:
    mornings = schedule(cron="0 9 * * 1-5", tz="Europe/Berlin")

    friday_after_nine = datetime(2026, 1, 16, 10, tzinfo=BERLIN)
    monday, tuesday = list(mornings.slots(friday_after_nine, utc(2026, 1, 20, 12)))

    assert (monday, tuesday) == (utc(2026, 1, 19, 8), utc(2026, 1, 20, 8))  # 09:00 CET


def test_weekday_mornings_in_berlin_keep_nine_local_across_the_march_change() -> None:
    mornings = schedule(cron="0 9 * * 1-5", tz="Europe/Berlin")

    # Clocks go forward on Sunday 2026-03-29: Friday is +01:00, Monday +02:00.
    slots = list(mornings.slots(utc(2026, 3, 27), utc(2026, 3, 31, 12)))

    assert slots == [utc(2026, 3, 27, 8), utc(2026, 3, 30, 7), utc(2026, 3, 31, 7)]
    assert [s.astimezone(BERLIN).hour for s in slots] == [9, 9, 9]


def test_slots_are_utc_instants_strictly_after_and_up_to_until() -> None:
    hourly = schedule(cron="@hourly")

    slots = list(hourly.slots(utc(2026, 1, 1, 1), utc(2026, 1, 1, 4)))

    assert slots == [utc(2026, 1, 1, 2), utc(2026, 1, 1, 3), utc(2026, 1, 1, 4)]
    assert all(slot.tzinfo is UTC for slot in slots)


def test_upcoming_gives_times_in_the_schedules_zone_with_their_offsets() -> None:
    mornings = schedule(cron="0 9 * * 1-5", tz="Europe/Berlin")

    times = mornings.upcoming(utc(2026, 3, 27), 4)

    assert [t.isoformat() for t in times] == [
        "2026-03-27T09:00:00+01:00",
        "2026-03-30T09:00:00+02:00",
        "2026-03-31T09:00:00+02:00",
        "2026-04-01T09:00:00+02:00",
    ]
    assert all(t.tzinfo == BERLIN for t in times)


# -- every -----------------------------------------------------------------------------------


def test_every_slots_are_aligned_to_the_epoch_whenever_they_are_listed() -> None:
    five = timedelta(minutes=5)
    early = schedule(every=five).upcoming(utc(2026, 5, 4, 10, 2, 13), 6)
    late = schedule(every=five).upcoming(utc(2026, 5, 4, 10, 11, 59), 4)

    assert early[0] == utc(2026, 5, 4, 10, 5)
    assert early[2:] == late
    epoch = utc(1970, 1, 1)
    assert all((t - epoch) % five == timedelta(0) for t in early)


def test_every_slots_follow_start_and_the_first_is_start_itself() -> None:
    start = datetime(2026, 5, 4, 12, 17, 30, tzinfo=BERLIN)
    hourly = schedule(every=timedelta(hours=1), start=start)

    before = hourly.upcoming(utc(2026, 1, 1), 2)
    later = hourly.upcoming(utc(2026, 5, 4, 13, 0), 2)

    assert before == [start, start + timedelta(hours=1)]
    assert later == [utc(2026, 5, 4, 13, 17, 30), utc(2026, 5, 4, 14, 17, 30)]


def test_an_every_slot_after_an_instant_on_a_slot_is_the_next_one() -> None:
    minutely = schedule(every=timedelta(minutes=1))

    assert minutely.next_after(utc(2026, 1, 1, 0, 7)) == utc(2026, 1, 1, 0, 8)


# -- newest ----------------------------------------------------------------------------------


def test_newest_of_a_yearly_schedule() -> None:
    yearly = schedule(cron="@yearly")

    assert yearly.newest(utc(2020, 6, 1), utc(2026, 3, 1)) == utc(2026, 1, 1)
    assert yearly.newest(utc(2026, 1, 1), utc(2027, 1, 1)) == utc(2027, 1, 1)
    assert yearly.newest(utc(2026, 1, 1), utc(2026, 12, 31)) is None  # `after` is excluded


@pytest.mark.parametrize(
    ("after", "until", "expected"),
    [
        (utc(2021, 1, 1), utc(2026, 1, 1), utc(2024, 2, 29)),
        (utc(2000, 1, 1), utc(2026, 1, 1), utc(2024, 2, 29)),
        (utc(1990, 1, 1), utc(2030, 1, 1), utc(2028, 2, 29)),
        (utc(2024, 3, 1), utc(2027, 1, 1), None),
        (utc(2080, 1, 1), utc(2104, 2, 28), utc(2096, 2, 29)),  # 2100 is no leap year
        (utc(2096, 3, 1), utc(2104, 2, 28), None),
        (utc(2090, 1, 1), utc(2104, 3, 1), utc(2104, 2, 29)),
    ],
)
def test_newest_of_a_leap_day_schedule(
    after: datetime, until: datetime, expected: datetime | None
) -> None:
    leap_day = schedule(cron="0 0 29 2 *")

    assert leap_day.newest(after, until) == expected


# -- definitions -----------------------------------------------------------------------------


def full_schedule(**changes: Any) -> Schedule:
    """A schedule with every field set; its arguments include a datetime and a date."""
    fields: dict[str, Any] = {
        "every": timedelta(minutes=15),
        "tz": "Europe/Berlin",
        "args": (utc(2026, 3, 29, 1, 30), 3, "x"),
        "kwargs": {"region": "eu", "since": date(2026, 1, 1), "limit": None},
        "queue": "reports",
        "priority": 5,
        "misfire": "all",
        "misfire_grace": timedelta(hours=2),
        "start": datetime(2026, 1, 1, 0, 7, tzinfo=BERLIN),
        "source": "api",
    }
    return schedule(**{**fields, **changes})


def test_equal_schedules_have_equal_definitions_whatever_the_kwargs_order() -> None:
    one = full_schedule(kwargs={"a": 1, "b": [1, 2]})
    two = full_schedule(kwargs={"b": [1, 2], "a": 1})

    assert one == two
    assert one.definition() == two.definition()
    assert one.definition() != full_schedule(kwargs={"a": 2, "b": [1, 2]}).definition()
    assert one.definition() != full_schedule(every=timedelta(minutes=16)).definition()


def test_a_schedule_with_a_set_argument_has_one_definition_in_every_process() -> None:
    code = (
        "from errands import Schedule; "
        "print(Schedule(name='n', task='t', cron='@daily', "
        "kwargs={'tags': {'alpha', 'beta', 'gamma', 'delta'}}).definition())"
    )

    def definition(seed: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout

    assert definition("1") == definition("2")


@pytest.mark.parametrize(
    "original",
    [
        full_schedule(),
        full_schedule(every=None, start=None, cron="30 2 * * *", misfire="skip"),
        schedule(cron="@hourly"),
        schedule(every=timedelta(seconds=1), source="code", args=(), kwargs={}),
    ],
    ids=["every-with-everything", "cron-in-a-zone", "alias", "bare-every"],
)
def test_a_definition_round_trips_to_an_equal_schedule(original: Schedule) -> None:
    text = original.definition()

    back = Schedule.from_definition("nightly", text)

    assert back == original
    assert back.definition() == text


def test_from_definition_takes_the_name_it_is_given() -> None:
    back = Schedule.from_definition("renamed", full_schedule().definition())

    assert back.name == "renamed"


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"cron": "@daily"}',
        "[1, 2]",
        '{"task": "t", "every_ms": "often"}',
        '{"task": "t", "cron": "bogus"}',
    ],
)
def test_an_unreadable_definition_raises_value_error_naming_the_schedule(text: str) -> None:
    with pytest.raises(ValueError, match="'nightly'"):
        Schedule.from_definition("nightly", text)


# -- description -----------------------------------------------------------------------------


def test_describe_and_idempotency_key_say_when_and_which_slot() -> None:
    mornings = schedule(cron="0 9 * * 1-5", tz="Europe/Berlin")
    quarter = schedule(every=timedelta(minutes=15))

    assert mornings.describe() == "cron 0 9 * * 1-5 Europe/Berlin"
    assert quarter.describe() == "every 0:15:00"
    slot = datetime(2026, 3, 30, 9, tzinfo=BERLIN)
    assert mornings.idempotency_key(slot) == "schedule:nightly@2026-03-30T07:00:00+00:00"
