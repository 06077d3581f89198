"""Daylight saving as Debian's cron (cronie) handles it, with three schedulers racing and one
of them killed and restarted at random, on every broker.

Each test walks the fake clock through one DST day in five-minute steps (every slot of the
four schedules falls on that grid, so no slot is late). At each step the live schedulers tick
at once; ten times a day one of them is killed mid-tick (its task cancelled at a random await,
its broker connections dropped) and a fresh one started in its place, as a supervisor would.
The jobs are then read back from the broker, with the slot each carries.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

import errands
from errands import envelope
from errands.brokers.contract import JobQuery, Page
from errands.current import SLOT_HEADER
from errands.testing import FakeClock

STEP = timedelta(minutes=5)
KILLS_PER_DAY = 10
SCHEDULERS = 3


@dataclass(frozen=True)
class Day:
    """One DST day: its zone, its date and its length in real hours."""

    zone: str
    date: str
    hours: int

    @property
    def start(self) -> datetime:
        """Local midnight, as a UTC instant (arithmetic on it is in real time)."""
        local = datetime.fromisoformat(self.date).replace(tzinfo=ZoneInfo(self.zone))
        return local.astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The next local midnight: `hours` real hours later."""
        return self.start + timedelta(hours=self.hours)


# Spring: 02:00 local jumps to 03:00 (a 23-hour day); autumn: an hour repeats (25 hours).
# Berlin moves at 02:00 CET -> 03:00 CEST and 03:00 CEST -> 02:00 CET (the repeated hour is
# 02:xx); New York at 02:00 EST -> 03:00 EDT and 02:00 EDT -> 01:00 EST (the repeated hour
# is 01:xx).
DAYS = {
    "berlin-spring": Day("Europe/Berlin", "2026-03-29", 23),
    "berlin-autumn": Day("Europe/Berlin", "2026-10-25", 25),
    "new-york-spring": Day("America/New_York", "2026-03-08", 23),
    "new-york-autumn": Day("America/New_York", "2026-11-01", 25),
}
EXPRESSIONS = {
    "quarter": "*/15 * * * *",
    "hourly": "0 * * * *",
    "at-0230": "30 2 * * *",
    "at-0130": "30 1 * * *",
}


def expected_slots(day: Day) -> dict[str, list[datetime]]:
    """Every slot each schedule must fire that day, derived from cronie's rules, not from the
    library under test:

    - "*/15" and "0 *" fire more often than hourly (a wildcard hour), so they keep their
      cadence in real time: 23 h x 4 = 92 and 23 runs on a spring day, 25 h x 4 = 100 and 25
      runs on an autumn day, each 15 or 60 real minutes after the previous.
    - "30 2" and "30 1" are fixed-time: once a day. A time in the skipped hour (02:30 on a
      spring day, in both zones) runs right after the jump, at 03:00 local; a time in the
      repeated hour (02:30 in Berlin, 01:30 in New York, in autumn) runs once, at its first
      occurrence (the summer-time one); any other day they run at their wall time.
    """
    zone = ZoneInfo(day.zone)
    quarter = [day.start + timedelta(minutes=15 * i) for i in range(day.hours * 4)]
    hourly = [day.start + timedelta(hours=i) for i in range(day.hours)]
    assert (len(quarter), len(hourly)) == ((92, 23) if day.hours == 23 else (100, 25))

    def fixed(hour: int) -> datetime:
        wall = datetime.fromisoformat(day.date).replace(hour=hour, minute=30, tzinfo=zone)
        if wall.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall.replace(
            tzinfo=None
        ):  # the wall time does not exist: the jump's end, 03:00 local
            return datetime.fromisoformat(day.date).replace(hour=3, tzinfo=zone)
        return wall.replace(fold=0)  # first occurrence when it repeats

    return {
        "quarter": quarter,
        "hourly": hourly,
        "at-0230": [fixed(2)],
        "at-0130": [fixed(1)],
    }


class Fleet:
    """Three schedulers on one broker storage, each an App of its own (a process of its own,
    but for the shared fake clock), killed and replaced at will."""

    def __init__(self, url: str, day: Day, clock: FakeClock) -> None:
        self.url, self.day, self.clock = url, day, clock
        self.shared: errands.Broker | None = None
        self.schedulers = [self.start() for _ in range(SCHEDULERS)]

    def start(self) -> errands.Scheduler:
        """A new App declaring the four schedules, and a Scheduler for it."""
        if self.url.startswith("memory:"):  # one process: every scheduler shares one broker
            self.shared = self.shared or errands.from_url(self.url, clock=self.clock)
            app = errands.App(self.url, broker=self.shared, clock=self.clock)
        else:
            app = errands.App(self.url, clock=self.clock)
        app.portal.adopt(asyncio.get_running_loop())
        for name, expression in EXPRESSIONS.items():
            app.periodic(name, cron=expression, tz=self.day.zone, name=name)
        return errands.Scheduler(app)

    async def restart(self, index: int) -> None:
        """Replace scheduler `index` with a fresh one, which stores its schedules at start."""
        old = self.schedulers[index].app
        if self.shared is None:
            await old.close_async()
        self.schedulers[index] = new = self.start()
        await new.app.schedules.sync_async()

    async def close(self) -> None:
        """Close every App's broker."""
        for scheduler in self.schedulers:
            await scheduler.app.close_async()


async def tick_and_kill(scheduler: errands.Scheduler, rng: random.Random) -> None:
    """Start a tick and cancel it after a random number of loop turns: a kill at whatever
    await it reached (reading the schedules, or a firing in flight)."""
    task = asyncio.ensure_future(scheduler.tick())
    for _ in range(rng.randint(0, 12)):
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def fleet(store_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Fleet]:
    """The day's fleet, its clock at the day's first instant and its schedules stored."""
    day = DAYS[request.node.callspec.params["day"]]
    clock = FakeClock(day.start.astimezone(UTC) - STEP)
    fleet = Fleet(store_url, day, clock)
    await fleet.schedulers[0].app.schedules.sync_async()  # cursors start before midnight
    try:
        yield fleet
    finally:
        await fleet.close()


@pytest.mark.parametrize("day", sorted(DAYS))
async def test_every_slot_of_a_dst_day_fires_exactly_once(day: str, fleet: Fleet) -> None:
    rng = random.Random(f"{day}-{fleet.url}")
    steps = int((fleet.day.end - fleet.day.start) / STEP)  # the last step is 23:55 local
    kills = set(rng.sample(range(steps), KILLS_PER_DAY))
    clock = fleet.clock
    for step in range(steps):
        clock.advance(STEP)
        victim = rng.randrange(SCHEDULERS) if step in kills else None
        ticks = [
            tick_and_kill(s, rng) if i == victim else s.tick()
            for i, s in enumerate(fleet.schedulers)
        ]
        await asyncio.gather(*ticks)
        if victim is not None:
            await fleet.restart(victim)
            await fleet.schedulers[victim].tick()  # the restarted one catches up at once
    fired = await fired_slots(fleet.schedulers[0].app)
    expected = expected_slots(fleet.day)
    for name, slots in expected.items():
        counts = Counter(fired.get(name, []))
        twice = sorted(slot for slot, n in counts.items() if n > 1)
        assert not twice, f"{name} fired twice for {len(twice)} slots, first {twice[:3]}"
        assert sorted(counts) == sorted(slot.astimezone(UTC) for slot in slots), name
    zone = ZoneInfo(fleet.day.zone)
    print(
        f"\n{day}: "
        + ", ".join(
            f"{name} {len(fired[name])}"
            + (
                f" at {fired[name][0].astimezone(zone).isoformat()}"
                if len(fired[name]) == 1
                else ""
            )
            for name in EXPRESSIONS
        )
    )


async def fired_slots(app: errands.App) -> dict[str, list[datetime]]:
    """The slot of every job in the broker, by schedule (its task is named after it)."""
    query: JobQuery | None = JobQuery(limit=500)
    slots: dict[str, list[datetime]] = {}
    while query is not None:
        page = await list_page(app, query)
        for job in page.jobs:
            headers = envelope.decode(bytes(job.payload)).headers
            slots.setdefault(job.task, []).append(datetime.fromisoformat(headers[SLOT_HEADER]))
        query = JobQuery(limit=500, before_id=page.next_cursor) if page.next_cursor else None
    return slots


async def list_page(app: errands.App, query: JobQuery) -> Page:
    """One page of the broker's jobs."""
    return await app.call_broker(lambda broker: broker.list_jobs(query))
