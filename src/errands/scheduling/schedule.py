"""Schedule: when a periodic job is due, as a value every scheduler computes the same way.

Slots are instants (aware, UTC). A cron schedule's slots are the instants whose wall time in
its zone matches the expression, with daylight saving handled as Debian's cron does (cronsim
implements those rules); an interval schedule's slots are `anchor + k * every`, in real time,
so every scheduler finds the same ones whatever it started.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from cronsim import CronSim, CronSimError

from errands import codec

Misfire = Literal["skip", "once", "all"]
Source = Literal["code", "api"]
MISFIRE_POLICIES: Final[tuple[Misfire, ...]] = ("skip", "once", "all")

#: The aliases cron itself knows, as the five fields they stand for.
ALIASES: Final[Mapping[str, str]] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
#: Windows tried, smallest first, when looking back for the newest slot before an instant: the
#: first window holding a slot ends the search, so a dense schedule reads only a few slots.
_LOOKBACK: Final = (
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=32),
    timedelta(days=367),
    timedelta(days=366 * 8 + 2),  # a leap day's schedule ("0 0 29 2 *") can wait eight years
)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A periodic job: which task to enqueue with which arguments, and when.

    Build it with `app.periodic(...)` or `app.schedules.add(...)`; the constructor checks
    every field and raises ValueError or TypeError naming the bad value.
    """

    name: str
    task: str
    cron: str | None = None
    every: timedelta | None = None
    tz: str = "UTC"
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    misfire: Misfire = "once"
    misfire_grace: timedelta | None = None
    start: datetime | None = None
    source: Source = "code"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or len(self.name) > 200:
            raise ValueError(f"a schedule name must be a non-empty string, got {self.name!r}")
        if (self.cron is None) == (self.every is None):
            raise ValueError(
                f"give exactly one of cron= and every= (got cron={self.cron!r}, "
                f"every={self.every!r})"
            )
        if self.cron is not None:
            _check_cron(self.cron)
            object.__setattr__(self, "cron", " ".join(self.cron.split()))
        if self.every is not None:
            _check_every(self.every)
        self.zone  # noqa: B018 -- an unknown zone raises here, at declaration
        if self.misfire not in MISFIRE_POLICIES:
            raise ValueError(f"misfire must be one of {MISFIRE_POLICIES}, got {self.misfire!r}")
        if self.misfire_grace is not None and (
            not isinstance(self.misfire_grace, timedelta) or self.misfire_grace <= timedelta(0)
        ):
            raise ValueError(
                f"misfire_grace must be a positive timedelta, got {self.misfire_grace!r}"
            )
        if self.start is not None and (
            not isinstance(self.start, datetime) or self.start.tzinfo is None
        ):
            raise ValueError(f"start must be an aware datetime, got {self.start!r}")
        if self.start is not None and self.cron is not None:
            raise ValueError("start= anchors every= schedules; a cron schedule has no anchor")
        try:
            object.__setattr__(self, "args", tuple(self.args))
            object.__setattr__(self, "kwargs", dict(self.kwargs))
            codec.to_wire([list(self.args), self.kwargs])
        except TypeError as error:
            raise TypeError(
                f"arguments of schedule {self.name!r} cannot be stored: {error}"
            ) from None

    # -- time ----------------------------------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        """The schedule's IANA zone."""
        return _zone(self.tz)

    def slots(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """The slots strictly after `after` and at or before `until`, oldest first, in UTC."""
        if self.every is not None:
            slot = self._first_interval_slot(after)
            while slot <= until:
                yield slot
                slot += self.every
            return
        assert self.cron is not None
        expression = ALIASES.get(self.cron, self.cron)
        for local in CronSim(expression, after.astimezone(self.zone)):
            slot = local.astimezone(UTC)
            if slot > until:
                return
            # cronsim started inside a repeated (autumn) hour may give a slot before its start.
            if slot > after:
                yield slot

    def next_after(self, instant: datetime) -> datetime:
        """The first slot strictly after `instant`, in UTC."""
        return next(self.slots(instant, datetime.max.replace(tzinfo=UTC)))

    def newest(self, after: datetime, until: datetime) -> datetime | None:
        """The newest slot in (after, until], or None: looks back in growing windows so a long
        gap is not walked slot by slot."""
        for window in _LOOKBACK:
            start = max(after, until - window)
            found = None
            for found in self.slots(start, until):  # noqa: B007 -- the last one is wanted
                pass
            if found is not None or start == after:
                return found
        found = None
        for found in self.slots(after, until):  # noqa: B007
            pass
        return found

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` slots after `after`, in the schedule's zone."""
        times: list[datetime] = []
        for slot in self.slots(after, datetime.max.replace(tzinfo=UTC)):
            if len(times) == count:
                break
            times.append(slot.astimezone(self.zone))
        return times

    def _first_interval_slot(self, after: datetime) -> datetime:
        assert self.every is not None
        anchor = self.start or EPOCH
        if after < anchor:
            return anchor.astimezone(UTC)
        steps = (after - anchor) // self.every + 1
        return (anchor + steps * self.every).astimezone(UTC)

    # -- description ---------------------------------------------------------------------------

    def describe(self) -> str:
        """When it fires, in a few words: "cron 0 9 * * 1-5 Europe/Berlin", "every 0:00:02"."""
        if self.cron is not None:
            return f"cron {self.cron} {self.tz}"
        anchored = f" from {self.start.isoformat()}" if self.start else ""
        return f"every {self.every}{anchored}"

    def idempotency_key(self, slot: datetime) -> str:
        """The job key of one slot: the broker stores at most one live job per (task, key)."""
        return f"schedule:{self.name}@{slot.astimezone(UTC).isoformat()}"

    # -- storage -------------------------------------------------------------------------------

    def definition(self) -> str:
        """This schedule as the JSON text brokers store; equal schedules give equal text."""
        body = {
            "task": self.task,
            "cron": self.cron,
            "every_ms": None if self.every is None else self.every // _MS,
            "tz": self.tz,
            "args": codec.to_wire(list(self.args)),
            "kwargs": codec.to_wire(dict(self.kwargs)),
            "queue": self.queue,
            "priority": self.priority,
            "misfire": self.misfire,
            "misfire_grace_ms": None if self.misfire_grace is None else self.misfire_grace // _MS,
            "start": None if self.start is None else self.start.astimezone(UTC).isoformat(),
            "source": self.source,
        }
        return msgspec.json.encode(body, order="sorted").decode()

    @classmethod
    def from_definition(cls, name: str, text: str) -> Schedule:
        """A stored definition back to a Schedule; ValueError saying what is wrong with it."""
        try:
            body = msgspec.json.decode(text)
            every, grace = body.get("every_ms"), body.get("misfire_grace_ms")
            start = body.get("start")
            return cls(
                name=name,
                task=body["task"],
                cron=body.get("cron"),
                every=None if every is None else every * _MS,
                tz=body.get("tz", "UTC"),
                args=tuple(codec.from_wire(body.get("args", []))),
                kwargs=codec.from_wire(body.get("kwargs", {})),
                queue=body.get("queue"),
                priority=body.get("priority"),
                misfire=body.get("misfire", "once"),
                misfire_grace=None if grace is None else grace * _MS,
                start=None if start is None else datetime.fromisoformat(start),
                source=body.get("source", "api"),
            )
        except (msgspec.DecodeError, KeyError, TypeError, AttributeError, ValueError) as error:
            raise ValueError(f"schedule {name!r} has an unreadable definition: {error}") from None


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str):
        raise ValueError(f"tz must be an IANA zone name such as 'Europe/Berlin', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: give an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from None


def _check_cron(expression: str) -> None:
    if not isinstance(expression, str):
        raise ValueError(f"cron must be a string such as '0 9 * * 1-5', got {expression!r}")
    fields = ALIASES.get(expression.strip(), expression)
    if expression.startswith("@") and expression.strip() not in ALIASES:
        known = ", ".join(ALIASES)
        raise ValueError(f"bad cron expression {expression!r}: unknown alias (known: {known})")
    try:
        CronSim(fields, EPOCH)
    except CronSimError as error:
        raise ValueError(f"bad cron expression {expression!r}: {error}") from None
    if len(fields.split()) != 5:
        raise ValueError(f"bad cron expression {expression!r}: five fields are needed")


def _check_every(every: timedelta) -> None:
    if not isinstance(every, timedelta):
        raise ValueError(f"every must be a timedelta such as timedelta(minutes=5), got {every!r}")
    if every < timedelta(seconds=1) or every % _MS:
        raise ValueError(f"every must be at least 1 second, in whole milliseconds; got {every!r}")
