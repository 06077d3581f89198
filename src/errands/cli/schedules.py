"""`errands schedules`: list, look ahead, add, pause, resume and remove periodic jobs.

Every command goes through `app.schedules`, so what it shows and changes is what every
scheduler on the broker sees.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

from errands.errors import ErrandsError
from errands.scheduling.schedule import MISFIRE_POLICIES
from errands.scheduling.schedules import ScheduleInfo

from .jobs import plural, print_table
from .target import Target, target_argument

T = TypeVar("T")
_UNITS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")

if TYPE_CHECKING:
    _DurationType = click.ParamType[timedelta]
    _InstantType = click.ParamType[datetime]
else:  # click < 8.4 has no generic ParamType to subscript at run time
    _DurationType = _InstantType = click.ParamType


class Duration(_DurationType):
    """ "90s", "5m", "1h30m", "2d" or plain seconds -> timedelta; anything else exits 2."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        """Parse a duration with units, or a number of seconds."""
        if isinstance(value, timedelta):
            return value
        text = str(value).strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return timedelta(seconds=float(text))
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            self.fail(f"{value!r} is not a duration such as 30s, 5m, 1h30m or 2d", param, ctx)
        return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


class Instant(_InstantType):
    """An ISO-8601 time; one without an offset is taken as UTC."""

    name = "iso-8601"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        """Parse ISO 8601 (2026-03-29T01:00:00+01:00, 2026-03-29 or ...Z)."""
        if isinstance(value, datetime):
            return value
        try:
            instant = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(
                f"{value!r} is not an ISO-8601 time such as 2026-03-29T01:00+01:00", param, ctx
            )
        return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def _call(verb: Callable[[], T]) -> T:
    """Run one `app.schedules` call: a bad value (a cron expression, a zone, arguments) is a
    usage error (exit 2); an unknown or taken name, or a broker error, exits 1."""
    try:
        return verb()
    except ErrandsError as error:
        raise click.ClickException(str(error)) from None
    except (ValueError, TypeError) as error:
        raise click.UsageError(str(error)) from None


@click.group("schedules")
def schedules_group() -> None:
    """Periodic jobs: those declared in code and those added at runtime."""


@schedules_group.command("list")
@target_argument
@click.option("--json", "as_lines", is_flag=True, help="One JSON object per line.")
def list_command(target: Target, as_lines: bool) -> None:
    """Each schedule: when it fires (its next three times in its zone and in UTC), its
    missed-run policy, its last run and the slots it skipped."""
    infos = _call(target.app.schedules.list)
    if as_lines:
        for info in infos:
            click.echo(json.dumps(_as_dict(info)))
        return
    rows = []
    for info in infos:
        schedule = info.schedule
        when = schedule.describe() if schedule else f"unreadable: {info.problem}"
        policy = _policy(info)
        upcoming = info.next_times(3, after=_after(info))
        local = "\n".join(t.isoformat() for t in upcoming)
        utc = "\n".join(t.astimezone(UTC).isoformat() for t in upcoming)
        last = f"{info.last_slot.isoformat()}\n{info.last_job_id}" if info.last_slot else "never"
        skipped = "\n".join(
            f"{s.count} {s.reason} {s.first.isoformat()}..{s.last.isoformat()}"
            for s in info.skipped
        )
        state = "paused" if info.paused else "active"
        if not info.declared and schedule is not None and schedule.source == "code":
            state += " (code of another app)"
        task = schedule.task if schedule else ""
        rows.append((info.name, task, when, state, policy, local, utc, last, skipped or "none"))
    columns = ("name", "task", "when", "state", "missed runs", "next", "next (UTC)", "last run")
    print_table(plural(len(rows), "schedule"), (*columns, "skipped"), rows)


def _after(info: ScheduleInfo) -> datetime:
    now = datetime.now(UTC)
    return max(now, info.record.cursor) if info.record else now


def _policy(info: ScheduleInfo) -> str:
    schedule = info.schedule
    if schedule is None:
        return ""
    grace = f", grace {schedule.misfire_grace}" if schedule.misfire_grace else ""
    return f"{schedule.misfire}{grace}"


def _as_dict(info: ScheduleInfo) -> dict[str, Any]:
    schedule = info.schedule
    return {
        "name": info.name,
        "task": schedule.task if schedule else None,
        "cron": schedule.cron if schedule else None,
        "every_seconds": schedule.every.total_seconds() if schedule and schedule.every else None,
        "tz": schedule.tz if schedule else None,
        "source": schedule.source if schedule else None,
        "declared_here": info.declared,
        "paused": info.paused,
        "misfire": schedule.misfire if schedule else None,
        "next": [t.isoformat() for t in info.next_times(3, after=_after(info))],
        "last_slot": info.last_slot.isoformat() if info.last_slot else None,
        "last_job_id": info.last_job_id,
        "skipped": [
            {
                "first": s.first.isoformat(),
                "last": s.last.isoformat(),
                "count": s.count,
                "reason": s.reason,
            }
            for s in info.skipped
        ],
        "problem": info.problem,
    }


@schedules_group.command("next")
@target_argument
@click.argument("name")
@click.option("--after", type=Instant(), help="Start after this time.  [default: now]")
@click.option("--count", type=click.IntRange(min=1, max=10_000), default=10, show_default=True)
def next_command(target: Target, name: str, after: datetime | None, count: int) -> None:
    """Print the next COUNT fire times of schedule NAME, one ISO-8601 time with its UTC offset
    per line, in the schedule's zone."""
    info = _call(lambda: target.app.schedules.get(name))
    if info.schedule is None:
        raise click.ClickException(info.problem or f"schedule {name!r} cannot be read")
    for instant in info.schedule.upcoming(after or datetime.now(UTC), count):
        click.echo(instant.isoformat())


@schedules_group.command("add")
@target_argument
@click.argument("name_argument", metavar="NAME", required=False)
@click.argument("task_argument", metavar="TASK", required=False)
@click.option("--name", "name_option", help="NAME, as an option.")
@click.option("--task", "task_option", help="TASK, as an option.")
@click.option("--cron", help='Five fields or an alias: "0 9 * * 1-5", "@daily".')
@click.option("--every", type=Duration(), help="An interval: 30s, 5m, 1h.")
@click.option("--tz", default="UTC", show_default=True, help="An IANA time zone.")
@click.option("--args", "args_json", default="[]", help="Positional arguments as a JSON array.")
@click.option("--kwargs", "kwargs_json", default="{}", help="Keyword arguments as a JSON object.")
@click.option("--queue", help="Queue of the jobs.  [default: the task's]")
@click.option("--priority", type=int, help="Priority of the jobs.  [default: the task's]")
@click.option("--misfire", type=click.Choice(MISFIRE_POLICIES), default="once", show_default=True)
@click.option("--misfire-grace", type=Duration(), help="How late a slot may still run.")
@click.option("--start", type=Instant(), help="With --every: the anchor of the slots.")
def add_command(
    target: Target,
    name_argument: str | None,
    task_argument: str | None,
    name_option: str | None,
    task_option: str | None,
    cron: str | None,
    every: timedelta | None,
    tz: str,
    args_json: str,
    kwargs_json: str,
    queue: str | None,
    priority: int | None,
    misfire: str,
    misfire_grace: timedelta | None,
    start: datetime | None,
) -> None:
    """Store schedule NAME enqueueing TASK (a task name) in the broker; every scheduler picks
    it up within a second. Its first slot is after now."""
    name = _one("NAME", name_argument, name_option)
    task = _one("TASK", task_argument, task_option)
    args = _json_option("--args", args_json, list)
    kwargs = _json_option("--kwargs", kwargs_json, dict)
    if (cron is None) == (every is None):
        raise click.UsageError("give exactly one of --cron and --every")
    if start is not None and every is None:
        raise click.UsageError("--start goes with --every")
    schedule = _call(
        lambda: target.app.schedules.add(
            target.app.registry.get(task) or task,
            name=name,
            cron=cron,
            every=every,
            tz=tz,
            args=tuple(args),
            kwargs=kwargs,
            queue=queue,
            priority=priority,
            misfire=misfire,
            misfire_grace=misfire_grace,
            start=start,
        )
    )
    upcoming = schedule.upcoming(datetime.now(UTC), 1)
    first = f"; first run {upcoming[0].isoformat()}" if upcoming else ""
    click.echo(f"added schedule {name}: {schedule.describe()}{first}")


def _one(what: str, argument: str | None, option: str | None) -> str:
    """A value given as an argument or as its option, not both and not neither."""
    if argument is not None and option is not None and argument != option:
        raise click.UsageError(f"{what} given twice: {argument!r} and --{what.lower()} {option!r}")
    value = argument if argument is not None else option
    if not value:
        raise click.UsageError(f"missing {what} (an argument, or --{what.lower()})")
    return value


def _json_option(option: str, text: str, kind: type) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"{text!r} is not JSON: {error}", param_hint=option) from None
    if not isinstance(value, kind):
        wanted = "an array" if kind is list else "an object"
        raise click.BadParameter(f"{text!r} is not {wanted}", param_hint=option)
    return value


@schedules_group.command("pause")
@target_argument
@click.argument("name")
def pause_command(target: Target, name: str) -> None:
    """Stop firing schedule NAME until resumed."""
    changed = _call(lambda: target.app.schedules.pause(name))
    click.echo(f"paused {name}" if changed else f"{name} was paused already")


@schedules_group.command("resume")
@target_argument
@click.argument("name")
def resume_command(target: Target, name: str) -> None:
    """Fire schedule NAME again, from now on."""
    changed = _call(lambda: target.app.schedules.resume(name))
    click.echo(f"resumed {name}" if changed else f"{name} was not paused")


@schedules_group.command("remove")
@target_argument
@click.argument("name")
def remove_command(target: Target, name: str) -> None:
    """Delete schedule NAME from the broker (its jobs stay)."""
    _call(lambda: target.app.schedules.remove(name))
    click.echo(f"removed {name}")
