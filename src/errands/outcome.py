"""Outcomes: how one attempt ended, handed to Broker.finish with the lease that ran it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from errands.job import AttemptError, CancelReason, FailReason
from errands.lease import Lease


@dataclass(frozen=True, slots=True)
class Completed:
    """The task returned; `result` is its value encoded by codec.py."""

    lease: Lease
    result: bytes


@dataclass(frozen=True, slots=True)
class Retrying:
    """The attempt failed and another is allowed after `delay` (failures + 1)."""

    lease: Lease
    error: AttemptError
    delay: timedelta


@dataclass(frozen=True, slots=True)
class Failed:
    """Dead-lettered: the job ends `failed` with `reason` (failures + 1 when `error` is set)."""

    lease: Lease
    reason: FailReason
    error: AttemptError | None = None


@dataclass(frozen=True, slots=True)
class Crashed:
    """The process running the attempt died; the broker counts it against max_crashes."""

    lease: Lease
    error: AttemptError
    delay: timedelta = timedelta(0)


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The attempt stopped because a cancel was requested."""

    lease: Lease
    reason: CancelReason = CancelReason.REQUESTED


@dataclass(frozen=True, slots=True)
class Released:
    """Given back unrun or unfinished at shutdown: available again, nothing charged."""

    lease: Lease


@dataclass(frozen=True, slots=True)
class Snoozed:
    """The task asked to run again after `delay`, charged nothing."""

    lease: Lease
    delay: timedelta


Outcome = Completed | Retrying | Failed | Crashed | Cancelled | Released | Snoozed
