"""`app.schedules`: the schedules declared in code and those stored in the broker, managed at
runtime from Python (the CLI and the HTTP API call the same methods).

Every schedule lives in the broker, so every scheduler and every `schedules list` sees the same
ones. A schedule declared in code (`app.periodic`) is written there by each scheduler at start;
its definition belongs to the code, so it can be paused and resumed here but not changed or
removed. A schedule added here ("api") is the broker's alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from errands.brokers.contract import ScheduleEntry, ScheduleRecord, SkippedSlots
from errands.errors import ScheduleExists, ScheduleNotFound
from errands.scheduling.schedule import Misfire, Schedule

if TYPE_CHECKING:
    from errands.app import App
    from errands.task import Task


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A schedule with its stored state, as `app.schedules.list()` gives it."""

    name: str
    schedule: Schedule | None  # None: the stored definition cannot be read (see `problem`)
    record: ScheduleRecord | None  # None: declared in code, not yet stored by a scheduler
    declared: bool  # declared in this App's code
    problem: str | None = None

    @property
    def paused(self) -> bool:
        """Whether schedulers leave it alone."""
        return self.record is not None and self.record.paused

    @property
    def last_slot(self) -> datetime | None:
        """The slot of its newest run, in UTC."""
        return self.record.last_slot if self.record else None

    @property
    def last_job_id(self) -> str | None:
        """The id of the job of its newest run."""
        return self.record.last_job_id if self.record else None

    @property
    def skipped(self) -> tuple[SkippedSlots, ...]:
        """Slots that passed without a run, oldest first (the newest records only)."""
        return self.record.skipped if self.record else ()

    def next_times(self, count: int = 3, after: datetime | None = None) -> list[datetime]:
        """Its next `count` fire times after `after` (default: its cursor), in its zone."""
        if self.schedule is None:
            return []
        start = after or (self.record.cursor if self.record else None)
        if start is None:
            return []
        return self.schedule.upcoming(start, count)


class Schedules:
    """The App's schedules. Each method has a blocking twin without the `_async` suffix."""

    def __init__(self, app: App) -> None:
        self.app = app
        #: Schedules declared in this App's code, by name.
        self.declared: dict[str, Schedule] = {}

    # -- declaring (import time) ---------------------------------------------------------------

    def declare(self, schedule: Schedule) -> Schedule:
        """Add a schedule to the App's code-declared ones; a second, different schedule of the
        same name is refused (two schedules of one task need their own `name=`)."""
        old = self.declared.get(schedule.name)
        if old is not None and old != schedule:
            raise ScheduleExists(schedule.name, "declared in code; give this one its own name=")
        self.declared[schedule.name] = schedule
        return schedule

    def build(self, task: Task[..., Any] | str, source: str, **options: Any) -> Schedule:
        """A Schedule of `task` (a task or a task name) with `options` (see App.periodic)."""
        from errands.task import Task

        if isinstance(task, Task):
            name = task.name
            problem = task.misfit(options.get("args", ()), dict(options.get("kwargs") or {}))
            if problem:
                raise TypeError(f"arguments of the schedule do not fit task {name}: {problem}")
        elif isinstance(task, str):
            name = task
        else:
            raise TypeError(f"a task or a task name is needed, got {task!r}")
        options["name"] = options.get("name") or name
        options["kwargs"] = dict(options.get("kwargs") or {})
        return Schedule(task=name, source=source, **options)  # type: ignore[arg-type]

    async def sync_async(self) -> None:
        """Write the declared schedules to the broker (new ones start now; a changed one
        starts afresh; an unchanged one keeps its cursor, so missed slots are found)."""
        entries = [ScheduleEntry(s.name, s.definition()) for s in self.declared.values()]
        if entries:
            await self.app.call_broker(lambda b: b.put_schedules(entries, replace=True))

    def sync(self) -> None:
        """Blocking twin of `sync_async`."""
        self.app.portal.call(self.sync_async)

    # -- reading -------------------------------------------------------------------------------

    async def list_async(self) -> list[ScheduleInfo]:
        """Every schedule: stored ones and declared ones not stored yet, by name."""
        records = await self.app.call_broker(lambda b: b.schedules())
        infos = {record.name: self._info(record) for record in records}
        for name, schedule in self.declared.items():
            if name not in infos:
                infos[name] = ScheduleInfo(name, schedule, None, declared=True)
        return [infos[name] for name in sorted(infos)]

    def list(self) -> list[ScheduleInfo]:
        """Blocking twin of `list_async`."""
        return self.app.portal.call(self.list_async)

    async def get_async(self, name: str) -> ScheduleInfo:
        """The schedule `name`; ScheduleNotFound naming it."""
        records = await self.app.call_broker(lambda b: b.schedules([name]))
        if records:
            return self._info(records[0])
        if name in self.declared:
            return ScheduleInfo(name, self.declared[name], None, declared=True)
        raise ScheduleNotFound(name, await self._known())

    def get(self, name: str) -> ScheduleInfo:
        """Blocking twin of `get_async`."""
        return self.app.portal.call(self.get_async, name)

    def _info(self, record: ScheduleRecord) -> ScheduleInfo:
        declared = record.name in self.declared
        try:
            schedule = Schedule.from_definition(record.name, record.definition)
        except ValueError as error:
            return ScheduleInfo(record.name, None, record, declared, str(error))
        return ScheduleInfo(record.name, schedule, record, declared)

    async def _known(self) -> set[str]:
        records = await self.app.call_broker(lambda b: b.schedules())
        return {r.name for r in records} | set(self.declared)

    # -- changing at runtime -------------------------------------------------------------------

    async def add_async(
        self,
        task: Task[..., Any] | str,
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        tz: str = "UTC",
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        misfire: Misfire = "once",
        misfire_grace: timedelta | None = None,
        start: datetime | None = None,
    ) -> Schedule:
        """Store a new schedule in the broker, where every scheduler finds it; its first slot
        is after now. ScheduleExists if the name is taken."""
        schedule = self.build(
            task,
            "api",
            cron=cron,
            every=every,
            tz=tz,
            args=args,
            kwargs=kwargs,
            name=name,
            queue=queue,
            priority=priority,
            misfire=misfire,
            misfire_grace=misfire_grace,
            start=start,
        )
        if schedule.name in self.declared:
            raise ScheduleExists(schedule.name, "declared in code")
        entry = ScheduleEntry(schedule.name, schedule.definition())
        [stored] = await self.app.call_broker(lambda b: b.put_schedules([entry], replace=False))
        if not stored:
            raise ScheduleExists(schedule.name, "stored in the broker")
        return schedule

    def add(self, task: Task[..., Any] | str, **options: Any) -> Schedule:
        """Blocking twin of `add_async`."""
        return self.app.portal.call(self.add_async, task, **options)

    async def change_async(self, name: str, **changes: Any) -> Schedule:
        """Change fields of a stored schedule (cron, every, tz, args, kwargs, queue, priority,
        misfire, misfire_grace, start, task); it starts afresh from now. A schedule declared
        in code is changed in the code."""
        info = await self._changeable(name, "change")
        assert info.schedule is not None
        unknown = set(changes) - {f.name for f in dataclasses.fields(Schedule)} | (
            set(changes) & {"name", "source"}
        )
        if unknown:
            raise TypeError(f"cannot change {', '.join(sorted(unknown))} of a schedule")
        if "cron" in changes and "every" not in changes:
            changes["every"] = None
        elif "every" in changes and "cron" not in changes:
            changes["cron"] = None
        if changes.get("every") is not None and "start" not in changes:
            changes["start"] = info.schedule.start
        schedule = dataclasses.replace(info.schedule, **changes)
        entry = ScheduleEntry(name, schedule.definition())
        await self.app.call_broker(lambda b: b.put_schedules([entry], replace=True))
        return schedule

    def change(self, name: str, **changes: Any) -> Schedule:
        """Blocking twin of `change_async`."""
        return self.app.portal.call(self.change_async, name, **changes)

    async def pause_async(self, name: str) -> bool:
        """Stop firing `name` until resumed; False if it was paused already."""
        await self.get_async(name)  # ScheduleNotFound for an unknown name
        await self.sync_async()  # a declared schedule no scheduler stored yet can be paused too
        return bool(await self.app.call_broker(lambda b: b.pause_schedules([name], paused=True)))

    def pause(self, name: str) -> bool:
        """Blocking twin of `pause_async`."""
        return self.app.portal.call(self.pause_async, name)

    async def resume_async(self, name: str) -> bool:
        """Fire `name` again from now on (slots that passed while paused do not run); False if
        it was not paused."""
        await self.get_async(name)
        changed = await self.app.call_broker(lambda b: b.pause_schedules([name], paused=False))
        return bool(changed)

    def resume(self, name: str) -> bool:
        """Blocking twin of `resume_async`."""
        return self.app.portal.call(self.resume_async, name)

    async def remove_async(self, name: str) -> None:
        """Delete a stored schedule (its jobs stay). A schedule this App declares in code comes
        back with the next scheduler, so it is refused: remove it from the code."""
        await self._changeable(name, "remove", readable=False)
        await self.app.call_broker(lambda b: b.remove_schedules([name]))

    def remove(self, name: str) -> None:
        """Blocking twin of `remove_async`."""
        self.app.portal.call(self.remove_async, name)

    async def _changeable(self, name: str, verb: str, *, readable: bool = True) -> ScheduleInfo:
        info = await self.get_async(name)
        if info.declared:
            raise ValueError(
                f"schedule {name!r} is declared in code ({self.app.cli_target()}): {verb} it "
                "there; pause and resume work at runtime"
            )
        if readable and info.schedule is None:
            raise ValueError(info.problem or f"schedule {name!r} cannot be read")
        return info
