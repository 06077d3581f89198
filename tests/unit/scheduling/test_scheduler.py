"""Scheduler: each slot of each schedule is enqueued once as a fake clock advances, however
many schedulers tick; runtime changes (pause, resume, add, change, remove) take effect."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

import errands
from errands import Scheduler, codec, envelope
from errands.brokers.contract import JobQuery, ScheduleRecord, SkippedSlots
from errands.brokers.memory import MemoryBroker
from errands.current import SLOT_HEADER
from errands.job import Job
from errands.testing import FakeClock
from tests.unit.scheduling.conftest import START

MINUTE = timedelta(minutes=1)
WITHIN = timedelta(seconds=10)


def minute(n: int) -> datetime:
    """The instant n minutes after START."""
    return START + n * MINUTE


async def stored_jobs(app: errands.App) -> list[Job]:
    """Every job in the App's broker, oldest first."""
    page = await app.call_broker(lambda b: b.list_jobs(JobQuery(limit=1000)))
    assert page.next_cursor is None
    return list(reversed(page.jobs))


def headers_of(job: Job) -> dict[str, str]:
    """The headers a job was enqueued with."""
    return envelope.decode(bytes(job.payload)).headers


async def fired(app: errands.App) -> list[datetime]:
    """The slots of the jobs schedulers enqueued, sorted."""
    return sorted(
        datetime.fromisoformat(headers_of(job)[SLOT_HEADER]) for job in await stored_jobs(app)
    )


async def app_on(broker: MemoryBroker, clock: FakeClock) -> errands.App:
    """An App on a given memory broker and clock, its portal the running loop."""
    app = errands.App("memory://", broker=broker, clock=clock)
    app.portal.adopt(asyncio.get_running_loop())
    return app


async def tick_all(schedulers: Sequence[Scheduler]) -> None:
    """One pass of every scheduler, all at once."""
    await asyncio.gather(*(s.tick() for s in schedulers))


# -- firing ----------------------------------------------------------------------------------


async def test_a_declared_schedule_fires_once_per_slot_as_the_clock_advances(
    clocked: errands.App, clock: FakeClock
) -> None:
    clocked.periodic("reports.build", every=MINUTE, name="minutely")
    scheduler = Scheduler(clocked)
    await clocked.schedules.sync_async()

    await scheduler.tick()
    assert await fired(clocked) == []  # stored at START: its first slot is after now
    for _ in range(3):
        clock.advance(MINUTE)
        await scheduler.tick()
        await scheduler.tick()  # a second pass finds nothing new
    clock.advance(MINUTE / 2)
    await scheduler.tick()

    assert await fired(clocked) == [minute(1), minute(2), minute(3)]
    assert scheduler.fired == 3
    [info] = await clocked.schedules.list_async()
    assert info.last_slot == minute(3)
    assert info.last_job_id == (await stored_jobs(clocked))[-1].id


async def test_tick_returns_the_time_until_the_next_slot_at_most_refresh(
    clocked: errands.App, clock: FakeClock
) -> None:
    clocked.periodic("reports.build", every=timedelta(seconds=10), name="often")
    await clocked.schedules.sync_async()
    clock.advance(timedelta(seconds=3))

    quick = await Scheduler(clocked, refresh=timedelta(minutes=1)).tick()
    capped = await Scheduler(clocked, refresh=timedelta(seconds=1)).tick()

    assert (quick, capped) == (timedelta(seconds=7), timedelta(seconds=1))


async def test_run_stores_the_declared_schedules_fires_and_returns_after_stop(
    clocked: errands.App, clock: FakeClock
) -> None:
    clocked.periodic("reports.build", every=MINUTE, name="minutely")
    scheduler = Scheduler(clocked, refresh=timedelta(milliseconds=10))
    running = asyncio.create_task(scheduler.run())
    try:
        await until(lambda: stored_schedules(clocked), "the schedule is stored")
        clock.advance(MINUTE)
        await until(lambda: fired(clocked), "the first slot is enqueued")
    finally:
        scheduler.stop()
        await asyncio.wait_for(running, WITHIN.total_seconds())

    assert await fired(clocked) == [minute(1)]


async def stored_schedules(app: errands.App) -> list[ScheduleRecord]:
    """The schedule records in the App's broker."""
    return await app.call_broker(lambda b: b.schedules())


async def until(probe: Any, what: str) -> None:
    """Poll the async `probe` until it returns something truthy; fail after WITHIN."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WITHIN.total_seconds()
    while not await probe():
        if loop.time() > deadline:
            pytest.fail(f"not within {WITHIN}: {what}")
        await asyncio.sleep(0.005)


class SlowScheduleReads(MemoryBroker):
    """A memory broker whose schedule reads take a turn of the loop, as a round trip to a
    server does: schedulers ticking together all read a cursor before any of them fires."""

    async def schedules(self, names: Sequence[str] | None = None) -> list[ScheduleRecord]:
        """The records, after letting the other tasks run."""
        records = await super().schedules(names)
        await asyncio.sleep(0)
        return records


@pytest.mark.parametrize("count", [2, 3])
async def test_schedulers_racing_on_one_app_enqueue_each_slot_once(
    clock: FakeClock, count: int
) -> None:
    app = await app_on(SlowScheduleReads(clock=clock), clock)
    try:
        app.periodic("reports.build", every=MINUTE, name="minutely")
        schedulers = [Scheduler(app) for _ in range(count)]
        await app.schedules.sync_async()
        for _ in range(4):
            clock.advance(MINUTE)
            await tick_all(schedulers)

        assert await fired(app) == [minute(1), minute(2), minute(3), minute(4)]
        assert sum(s.fired for s in schedulers) == 4  # one firing applied per slot
        assert sum(s.lost_races for s in schedulers) == 4 * (count - 1)
    finally:
        await app.close_async()


async def test_schedulers_ticking_together_on_a_plain_memory_broker_enqueue_each_slot_once(
    clocked: errands.App, clock: FakeClock
) -> None:
    clocked.periodic("reports.build", cron="*/5 * * * *", name="five")
    schedulers = [Scheduler(clocked) for _ in range(3)]
    await clocked.schedules.sync_async()
    for _ in range(12):
        clock.advance(MINUTE * 2.5)
        await tick_all(schedulers)

    assert await fired(clocked) == [minute(m) for m in range(5, 31, 5)]
    assert sum(s.fired for s in schedulers) == 6


async def test_the_job_carries_its_slot_and_schedule_to_the_running_task(
    clocked: errands.App, clock: FakeClock
) -> None:
    @clocked.periodic(every=MINUTE, name="beat")  # type: ignore[untyped-decorator]
    @clocked.task(name="beat")
    def beat() -> tuple[datetime | None, str | None, str]:
        job = errands.current_job()
        return job.slot, job.schedule, job.headers[SLOT_HEADER]

    scheduler = Scheduler(clocked)
    await clocked.schedules.sync_async()
    clock.advance(MINUTE + timedelta(seconds=20))  # it runs 20 s after its slot
    await scheduler.tick()

    assert await clocked.run_until_idle_async() == 1

    [job] = await stored_jobs(clocked)
    slot, name, header = await clocked.job(job.id).result_async(WITHIN)
    assert slot == minute(1)
    assert name == "beat"
    assert header == "2030-01-01T00:01:00+00:00"
    assert job.idempotency_key == "schedule:beat@2030-01-01T00:01:00+00:00"


async def test_a_job_enqueued_by_hand_has_no_slot_or_schedule(clocked: errands.App) -> None:
    @clocked.task(name="plain")
    def plain() -> tuple[datetime | None, str | None]:
        job = errands.current_job()
        return job.slot, job.schedule

    handle = await plain.enqueue_async()
    await clocked.run_until_idle_async()

    assert await handle.result_async(WITHIN) == (None, None)


async def test_a_task_known_only_by_name_is_enqueued_by_name_with_its_arguments(
    clocked: errands.App, clock: FakeClock
) -> None:
    clocked.periodic(
        "billing.invoice", every=MINUTE, name="invoices", args=(2030,), kwargs={"month": 1}
    )
    await clocked.schedules.add_async("billing.remind", every=MINUTE, name="reminders")
    await clocked.schedules.sync_async()
    clock.advance(MINUTE)

    await Scheduler(clocked).tick()

    jobs = await stored_jobs(clocked)
    assert sorted(job.task for job in jobs) == ["billing.invoice", "billing.remind"]
    invoice = next(job for job in jobs if job.task == "billing.invoice")
    sent = envelope.decode(bytes(invoice.payload))
    assert (codec.from_wire(sent.args), codec.from_wire(sent.kwargs)) == ([2030], {"month": 1})
    assert invoice.queue == "default"


async def test_queue_and_priority_of_a_schedule_go_on_its_jobs(
    clocked: errands.App, clock: FakeClock
) -> None:
    clocked.periodic("reports.build", every=MINUTE, name="urgent", queue="reports", priority=7)
    await clocked.schedules.sync_async()
    clock.advance(MINUTE)

    await Scheduler(clocked).tick()

    [job] = await stored_jobs(clocked)
    assert (job.queue, job.priority) == ("reports", 7)


# -- missed slots ----------------------------------------------------------------------------


async def test_skipped_slots_after_an_outage_are_listed_with_the_schedule(
    clocked: errands.App, clock: FakeClock
) -> None:
    clocked.periodic("reports.build", cron="@hourly", misfire="skip", name="hourly")
    await clocked.schedules.sync_async()
    clock.advance(timedelta(hours=5, minutes=30))  # no scheduler ran

    await Scheduler(clocked).tick()

    assert await fired(clocked) == []
    [info] = await clocked.schedules.list_async()
    assert info.skipped == (
        SkippedSlots(
            START + timedelta(hours=1),
            START + timedelta(hours=5),
            5,
            "missed",
            START + timedelta(hours=5, minutes=30),
        ),
    )
    assert info.last_slot is None


async def test_all_after_an_outage_enqueues_every_missed_slot(
    clocked: errands.App, clock: FakeClock
) -> None:
    clocked.periodic("reports.build", cron="@hourly", misfire="all", name="hourly")
    await clocked.schedules.sync_async()
    clock.advance(timedelta(hours=3, minutes=30))

    await Scheduler(clocked).tick()

    assert await fired(clocked) == [START + timedelta(hours=h) for h in (1, 2, 3)]


async def test_the_default_policy_after_an_outage_enqueues_the_newest_missed_slot(
    clocked: errands.App, clock: FakeClock
) -> None:
    clocked.periodic("reports.build", cron="@hourly", name="hourly")  # misfire="once"
    await clocked.schedules.sync_async()
    clock.advance(timedelta(hours=5, minutes=30))

    await Scheduler(clocked).tick()

    assert await fired(clocked) == [START + timedelta(hours=5)]


# -- pause and resume ------------------------------------------------------------------------


async def test_pause_stops_firing_and_resume_does_not_fire_the_slots_that_passed(
    clocked: errands.App, clock: FakeClock
) -> None:
    clocked.periodic("reports.build", every=MINUTE, misfire="all", name="minutely")
    scheduler = Scheduler(clocked)
    await clocked.schedules.sync_async()
    clock.advance(MINUTE)
    await scheduler.tick()

    assert await clocked.schedules.pause_async("minutely") is True
    assert await clocked.schedules.pause_async("minutely") is False
    assert (await clocked.schedules.get_async("minutely")).paused
    clock.advance(3 * MINUTE)
    await scheduler.tick()
    assert await fired(clocked) == [minute(1)]

    assert await clocked.schedules.resume_async("minutely") is True
    assert await clocked.schedules.resume_async("minutely") is False
    await scheduler.tick()
    assert await fired(clocked) == [minute(1)]  # 00:02-00:04 passed while paused
    clock.advance(MINUTE)
    await scheduler.tick()

    assert await fired(clocked) == [minute(1), minute(5)]


async def test_a_declared_schedule_no_scheduler_stored_yet_can_be_paused(
    clocked: errands.App, clock: FakeClock
) -> None:
    clocked.periodic("reports.build", every=MINUTE, name="minutely")

    assert await clocked.schedules.pause_async("minutely") is True
    await clocked.schedules.sync_async()  # as a scheduler does at start
    clock.advance(MINUTE)
    await Scheduler(clocked).tick()

    assert await fired(clocked) == []
    assert (await clocked.schedules.get_async("minutely")).paused


# -- runtime schedules -----------------------------------------------------------------------


async def test_a_schedule_added_at_runtime_fires_changes_and_stops_when_removed(
    clocked: errands.App, clock: FakeClock
) -> None:
    @clocked.task(name="ping")
    def ping(host: str) -> None: ...

    added = await clocked.schedules.add_async(
        ping, every=MINUTE, name="pinger", kwargs={"host": "a"}
    )
    scheduler = Scheduler(clocked)
    clock.advance(MINUTE)
    await scheduler.tick()
    assert await fired(clocked) == [minute(1)]

    changed = await clocked.schedules.change_async("pinger", cron="*/5 * * * *")
    for _ in range(4):
        clock.advance(MINUTE)
        await scheduler.tick()
    assert await fired(clocked) == [minute(1), minute(5)]

    await clocked.schedules.remove_async("pinger")
    clock.advance(5 * MINUTE)
    await scheduler.tick()

    assert await fired(clocked) == [minute(1), minute(5)]
    assert (added.source, added.every, added.kwargs) == ("api", MINUTE, {"host": "a"})
    assert (changed.cron, changed.every, changed.kwargs) == ("*/5 * * * *", None, {"host": "a"})
    assert [info.name for info in await clocked.schedules.list_async()] == []
    assert {job.task for job in await stored_jobs(clocked)} == {"ping"}


async def test_adding_a_schedule_refuses_arguments_that_do_not_fit_its_task(
    clocked: errands.App,
) -> None:
    @clocked.task(name="ping")
    def ping(host: str) -> None: ...

    with pytest.raises(TypeError, match=r"task ping: .*'port'"):
        await clocked.schedules.add_async(
            ping, every=MINUTE, name="pinger", kwargs={"host": "a", "port": 1}
        )
    assert await clocked.schedules.list_async() == []


async def test_an_unknown_schedule_name_raises_schedule_not_found_naming_it(
    clocked: errands.App,
) -> None:
    clocked.periodic("reports.build", every=MINUTE, name="known")
    schedules = clocked.schedules
    verbs: list[Callable[[], Awaitable[Any]]] = [
        lambda: schedules.get_async("nope"),
        lambda: schedules.pause_async("nope"),
        lambda: schedules.resume_async("nope"),
        lambda: schedules.change_async("nope", cron="@daily"),
        lambda: schedules.remove_async("nope"),
    ]

    for verb in verbs:
        with pytest.raises(errands.ScheduleNotFound, match=r"'nope' \(known: known\)"):
            await verb()


async def test_adding_a_taken_name_raises_schedule_exists_naming_it(
    clocked: errands.App,
) -> None:
    clocked.periodic("reports.build", every=MINUTE, name="declared")
    await clocked.schedules.add_async("reports.build", cron="@daily", name="stored")

    with pytest.raises(errands.ScheduleExists, match=r"'stored' exists already \(stored"):
        await clocked.schedules.add_async("reports.build", cron="@hourly", name="stored")
    with pytest.raises(errands.ScheduleExists, match=r"'declared' exists already \(declared"):
        await clocked.schedules.add_async("reports.build", cron="@hourly", name="declared")

    assert (await clocked.schedules.get_async("stored")).schedule.cron == "@daily"  # type: ignore[union-attr]


@pytest.mark.parametrize("verb", ["change", "remove"])
async def test_a_schedule_declared_in_code_cannot_be_changed_or_removed_at_runtime(
    clocked: errands.App, verb: str
) -> None:
    clocked.periodic("reports.build", every=MINUTE, name="declared")
    await clocked.schedules.sync_async()

    verbs: dict[str, Callable[[], Awaitable[Any]]] = {
        "change": lambda: clocked.schedules.change_async("declared", every=2 * MINUTE),
        "remove": lambda: clocked.schedules.remove_async("declared"),
    }

    with pytest.raises(ValueError, match=rf"'declared' is declared in code .*{verb} it there"):
        await verbs[verb]()

    [record] = await stored_schedules(clocked)
    assert '"every_ms":60000' in record.definition


async def test_a_schedule_another_app_declares_in_code_is_left_to_that_apps_schedulers(
    clock: FakeClock,
) -> None:
    shared = MemoryBroker(clock=clock)
    ours, theirs = await app_on(shared, clock), await app_on(shared, clock)
    try:
        ours.periodic("ours.task", every=MINUTE, name="ours")
        theirs.periodic("theirs.task", every=MINUTE, name="theirs")
        await theirs.schedules.sync_async()
        await ours.schedules.sync_async()
        clock.advance(MINUTE)

        await Scheduler(ours).tick()
        assert [job.task for job in await stored_jobs(ours)] == ["ours.task"]
        listed = {info.name: info.declared for info in await ours.schedules.list_async()}
        assert listed == {"ours": True, "theirs": False}

        await Scheduler(theirs).tick()
        assert sorted(job.task for job in await stored_jobs(ours)) == ["ours.task", "theirs.task"]
    finally:
        await ours.close_async()
        await theirs.close_async()


async def test_a_schedule_added_at_runtime_is_fired_by_any_apps_scheduler(
    clock: FakeClock,
) -> None:
    shared = MemoryBroker(clock=clock)
    producer, other = await app_on(shared, clock), await app_on(shared, clock)
    try:
        await producer.schedules.add_async("reports.build", every=MINUTE, name="added")
        clock.advance(MINUTE)

        await Scheduler(other).tick()

        assert await fired(other) == [minute(1)]
    finally:
        await producer.close_async()
        await other.close_async()
