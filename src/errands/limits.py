"""Rate and concurrency limits as values: what a task or a queue declares, and the `Limit`s a
job carries for the claim to enforce (see docs/limits.md).

Values only: the claim of every broker decides, with brokers/gate.py (or its Lua twin).
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

#: A limit key's prefixes: a task's own ("task:<name>", or "task:<name>:<value>" per key) and a
#: queue's ("queue:<name>"), so a task and a queue of one name never share a state.
TASK_PREFIX: Final = "task:"
QUEUE_PREFIX: Final = "queue:"

_UNITS_US: Final = {"ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000}
_RATE: Final = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(ms|s|m|h)\s*$")
#: Stored instants are milliseconds: a key whose rate admits more than one job a millisecond
#: needs a burst at least that large, or it would be held to one job per tick of the clock.
_TICK_US: Final = 1_000


class Limit(msgspec.Struct, frozen=True, array_like=True):
    """One limit a job is held to at claim time, shared by every job with the same `key`.

    `period_us` is the GCRA emission interval (one job per period; None: no rate limit) and
    `burst` how many jobs may start back to back after an idle spell; `concurrency` caps the
    key's running jobs (None: no cap).
    """

    key: str
    period_us: int | None = None
    burst: int = 1
    concurrency: int | None = None

    @property
    def queue(self) -> str | None:
        """The queue a queue limit is about (its running jobs are all the queue's), else None."""
        return self.key[len(QUEUE_PREFIX) :] if self.key.startswith(QUEUE_PREFIX) else None


@dataclass(frozen=True, slots=True)
class Limits:
    """A rate and/or concurrency limit as declared (`@app.task(rate_limit=...)`,
    `app.queue_limit(...)`), before it is given a key."""

    period_us: int | None = None
    burst: int = 1
    concurrency: int | None = None

    @classmethod
    def declare(
        cls, rate_limit: str | None, concurrency_limit: int | None, burst: int | None
    ) -> Limits | None:
        """The limits of these options, None when none is set; ValueError names a bad one."""
        if rate_limit is None and concurrency_limit is None:
            if burst is not None:
                raise ValueError("burst= goes with rate_limit=")
            return None
        period_us = None if rate_limit is None else parse_rate(rate_limit)
        if concurrency_limit is not None and (
            isinstance(concurrency_limit, bool)
            or not isinstance(concurrency_limit, int)
            or concurrency_limit < 1
        ):
            raise ValueError(f"concurrency_limit must be an int >= 1, got {concurrency_limit!r}")
        if burst is not None and (
            isinstance(burst, bool) or not isinstance(burst, int) or burst < 1
        ):
            raise ValueError(f"burst must be an int >= 1, got {burst!r}")
        if burst is not None and period_us is None:
            raise ValueError("burst= goes with rate_limit=")
        least = 1 if period_us is None else math.ceil(_TICK_US / period_us)
        return cls(period_us, max(burst or 1, least), concurrency_limit)

    def keyed(self, key: str) -> Limit:
        """This limit under `key`."""
        return Limit(key, self.period_us, self.burst, self.concurrency)

    def merged(self, other: Limits | None) -> Limits:
        """These limits with what `other` (a call's options) sets instead."""
        if other is None:
            return self
        period = self.period_us if other.period_us is None else other.period_us
        burst = self.burst if other.period_us is None else other.burst
        concurrency = self.concurrency if other.concurrency is None else other.concurrency
        return Limits(period, burst, concurrency)


def parse_rate(text: str) -> int:
    """The period in microseconds of a rate such as "100/s", "5/m", "1000/h" or "1/100ms";
    ValueError naming `text` when it is not one."""
    found = _RATE.match(text) if isinstance(text, str) else None
    if found is None:
        raise ValueError(
            f"bad rate_limit {text!r}: write N/unit, unit one of ms, s, m, h, optionally "
            "with a count (e.g. '100/s', '5/m', '1/100ms')"
        )
    count, per, unit = int(found[1]), int(found[2] or 1), found[3]
    if count < 1 or per < 1:
        raise ValueError(f"bad rate_limit {text!r}: both numbers must be at least 1")
    # Rounded up: a period never admits more than the rate asked.
    return max(1, math.ceil(per * _UNITS_US[unit] / count))


LimitKey = str | Callable[..., Any]


def key_reader(
    signature: inspect.Signature, limit_key: LimitKey | None, task: str
) -> Callable[[Sequence[Any], Mapping[str, Any]], str | None] | None:
    """How to read a call's key value: `limit_key` names an argument of the function, or is a
    callable given the call's arguments by name; None when the task has no per-key limit.

    A value is made a string (None, or a callable's None, means the task-wide key)."""
    if limit_key is None:
        return None
    if isinstance(limit_key, str):
        if limit_key not in signature.parameters:
            raise ValueError(
                f"limit_key {limit_key!r} is not an argument of task {task} "
                f"(arguments: {', '.join(signature.parameters) or 'none'})"
            )
        name = limit_key

        def by_name(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
            value = _bound(signature, args, kwargs)[name]
            return None if value is None else str(value)

        return by_name
    if not callable(limit_key):
        raise TypeError(f"limit_key must be an argument name or a callable, got {limit_key!r}")
    reader = limit_key

    def by_call(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
        value = reader(**_bound(signature, args, kwargs))
        return None if value is None else str(value)

    return by_call


def _bound(
    signature: inspect.Signature, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def task_key(task: str, value: str | None) -> str:
    """The limit key of task `task` for a call whose key value is `value`."""
    return f"{TASK_PREFIX}{task}" if value is None else f"{TASK_PREFIX}{task}:{value}"


def queue_key(queue: str) -> str:
    """The limit key of queue `queue`."""
    return f"{QUEUE_PREFIX}{queue}"
