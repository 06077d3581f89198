"""Scheduler: enqueues each due slot of every schedule, once, however many schedulers run.

No leader: every scheduler reads the stored schedules, plans each one's due slots
(misfire.py) and asks the broker to fire them against the cursor it read. The broker applies a
firing only if the cursor still holds and stores the jobs in the same write, so of several
schedulers racing for one slot exactly one enqueues it, and a scheduler killed at any point
leaves either the whole firing or none of it. Each slot's job also carries the slot's own
idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from errands.brokers.contract import Firing, ScheduleRecord
from errands.current import SCHEDULE_HEADER, SLOT_HEADER
from errands.errors import BrokerError
from errands.job import JobSpec
from errands.scheduling.misfire import Plan, plan
from errands.scheduling.schedule import Schedule

if TYPE_CHECKING:
    from errands.app import App

log = logging.getLogger("errands.scheduler")

#: How long a scheduler waits after the broker failed before it tries again.
RETRY_AFTER: Final = timedelta(seconds=1)


class Scheduler:
    """Fires the App's schedules (declared in code and stored in the broker) until stopped.

    `refresh` bounds how long a change made elsewhere (a schedule added, paused, removed)
    waits to be seen; slots themselves are fired on time whatever `refresh` is.
    """

    def __init__(self, app: App, *, refresh: timedelta = timedelta(seconds=1)) -> None:
        self.app = app
        self.refresh = refresh
        self.fired = 0  # jobs this scheduler enqueued
        self.lost_races = 0  # firings another scheduler applied first
        self._parsed: dict[tuple[str, str], Schedule | None] = {}
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def stop(self) -> None:
        """Ask `run` to return after its current pass; safe from any thread."""
        loop = self._loop
        if loop is not None and loop.is_running() and not _on(loop):
            loop.call_soon_threadsafe(self._stop.set)
        else:
            self._stop.set()

    async def run(self) -> None:
        """Store the App's declared schedules, then fire due slots until `stop()`.

        Like a worker, it runs on the App's portal loop: the caller's loop if the portal has
        none yet (`errands scheduler`), else the portal's."""
        portal = self.app.portal
        if not portal.owns_running_loop():
            if portal.started:
                return await portal.run(self._run)
            portal.adopt(asyncio.get_running_loop())
        await self._run()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.app.schedules.sync_async()
        log.info(
            "scheduler started: %d schedules declared in code", len(self.app.schedules.declared)
        )
        while not self._stop.is_set():
            try:
                wait = await self.tick()
            except BrokerError as error:
                log.warning("scheduler: the broker failed (%s); trying again", error)
                wait = RETRY_AFTER
            except Exception:  # a bug or a bad schedule must not stop every other schedule
                log.exception("scheduler: a pass failed; trying again")
                wait = RETRY_AFTER
            if wait > timedelta(0):
                await self._sleep(min(wait, self.refresh))

    async def tick(self) -> timedelta:
        """Fire every due slot of every schedule once; returns the time until the next slot."""
        records = await self.app.call_broker(lambda broker: broker.schedules())
        now = self.app.clock.now()
        soonest = self.refresh
        for record in records:
            schedule = self._runnable(record)
            if schedule is None:
                continue
            cursor = await self._fire_due(schedule, record, now)
            if cursor is not None:
                soonest = min(soonest, schedule.next_after(max(cursor, now)) - now)
        return soonest

    async def _fire_due(
        self, schedule: Schedule, record: ScheduleRecord, now: datetime
    ) -> datetime | None:
        """Fire `record`'s due slots (in several firings when there are many); the cursor it
        ends at, or None when another scheduler moved it first."""
        cursor = record.cursor
        while (step := plan(schedule, cursor, now)) is not None:
            firing = self._firing(schedule, cursor, step)
            applied = await self._apply(firing)
            if not applied:
                self.lost_races += 1
                return None
            self._log(schedule, step)
            self.fired += len(step.runs)
            cursor = step.advance_to
        return cursor

    async def _apply(self, firing: Firing) -> bool:
        return await self.app.call_broker(lambda broker: broker.fire(firing))

    def _firing(self, schedule: Schedule, cursor: datetime, step: Plan) -> Firing:
        specs = tuple(self._spec(schedule, slot) for slot in step.runs)
        return Firing(
            name=schedule.name,
            cursor=cursor,
            advance_to=step.advance_to,
            specs=specs,
            skipped=step.skipped,
            last_slot=step.runs[-1] if step.runs else None,
        )

    def _spec(self, schedule: Schedule, slot: datetime) -> JobSpec:
        headers = {SCHEDULE_HEADER: schedule.name, SLOT_HEADER: slot.astimezone(UTC).isoformat()}
        task = self.app.by_name(schedule.task).options(
            idempotency_key=schedule.idempotency_key(slot),
            headers=headers,
            queue=schedule.queue,
            priority=schedule.priority,
        )
        return task.call(*schedule.args, **schedule.kwargs).spec()

    def _runnable(self, record: ScheduleRecord) -> Schedule | None:
        """The schedule this scheduler fires for `record`, or None: paused, unreadable, or
        declared in code by another app (whose own schedulers fire it)."""
        if record.paused:
            return None
        key = (record.name, record.definition)
        if key not in self._parsed:
            try:
                self._parsed[key] = Schedule.from_definition(record.name, record.definition)
            except ValueError as error:
                log.error("%s; it is not fired", error)
                self._parsed[key] = None
        schedule = self._parsed[key]
        if schedule is None:
            return None
        if schedule.source == "code" and record.name not in self.app.schedules.declared:
            return None
        return schedule

    def _log(self, schedule: Schedule, step: Plan) -> None:
        for skipped in step.skipped:
            log.warning(
                "schedule %s: %d slot(s) from %s to %s skipped (%s)",
                schedule.name,
                skipped.count,
                skipped.first.isoformat(),
                skipped.last.isoformat(),
                skipped.reason,
            )
        for slot in step.runs:
            log.info("schedule %s: enqueued %s for %s", schedule.name, schedule.task, slot)

    async def _sleep(self, delay: timedelta) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay.total_seconds()):
                await self._stop.wait()


def _on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
