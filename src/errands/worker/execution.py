"""Execution: one claimed job in, one Outcome out, as small named steps.

The one place where exceptions become Outcomes. Pools decide where the function runs; this
module decides what its ending means.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from errands import codec, envelope
from errands.brokers.contract import Claimed
from errands.errors import Timeout
from errands.job import AttemptError, ErrorKind, FailReason
from errands.outcome import Completed, Failed, Outcome
from errands.policy import after_error
from errands.task import Task

#: Raw bytes of a malformed payload kept in the dead-letter error, base64-free but capped.
RAW_KEEP = 4096


@dataclass(frozen=True, slots=True)
class Invocation:
    """A decoded job: the task and the arguments that bind to its function."""

    task: Task[..., Any]
    args: list[Any]
    kwargs: dict[str, Any]
    timeout: timedelta | None


def prepare(claimed: Claimed, registry: Mapping[str, Task[..., Any]]) -> Invocation | Outcome:
    """Decode the payload, resolve the task, bind the arguments; or the Failed outcome."""
    try:
        env = envelope.decode(bytes(claimed.job.payload))
        args, kwargs = codec.from_wire(env.args), codec.from_wire(env.kwargs)
        timeout = timedelta(milliseconds=env.timeout_ms) if env.timeout_ms else None
    except Exception as error:  # MalformedMessage, or a tagged value that does not parse
        return _dead(claimed, FailReason.MALFORMED, ErrorKind.MALFORMED, error, raw=True)
    task = registry.get(env.task)
    if task is None:
        known = ", ".join(sorted(registry)[:5]) or "none"
        unknown = LookupError(f"no task named {env.task!r} on this app (registered: {known})")
        return _dead(claimed, FailReason.UNKNOWN_TASK, ErrorKind.EXCEPTION, unknown)
    try:
        inspect.signature(task.fn).bind(*args, **kwargs)
    except TypeError as error:
        detail = TypeError(f"arguments do not fit {task.name}: {error}")
        return _dead(claimed, FailReason.BAD_ARGUMENTS, ErrorKind.EXCEPTION, detail)
    return Invocation(task, args, kwargs, timeout or task.defaults.timeout)


def completed(claimed: Claimed, value: Any) -> Outcome:
    """The Outcome of a returned value; a value JSON cannot carry fails the job."""
    try:
        return Completed(claimed.lease, codec.dumps(value))
    except TypeError as error:
        return Failed(claimed.lease, FailReason.ERROR, error_of(claimed, error))


def classify(
    error: BaseException, claimed: Claimed, task: Task[..., Any], kind: ErrorKind | None = None
) -> Outcome:
    """Turn an exception raised by an attempt (or a task's SystemExit) into Retrying or Failed,
    by the retry policy."""
    return after_error(claimed, error, error_of(claimed, error, kind), task.defaults.retry)


def error_of(claimed: Claimed, error: BaseException, kind: ErrorKind | None = None) -> AttemptError:
    """An exception as data: kind, type name, message and traceback text."""
    if kind is None:
        kind = (
            ErrorKind.TIMEOUT if isinstance(error, Timeout | TimeoutError) else ErrorKind.EXCEPTION
        )
    return AttemptError(
        attempt=claimed.lease.attempt,
        kind=kind,
        type=type(error).__qualname__,
        message=str(error),
        traceback="".join(traceback.format_exception(error)),
    )


def _dead(
    claimed: Claimed, reason: FailReason, kind: ErrorKind, error: Exception, *, raw: bool = False
) -> Failed:
    message = str(error)
    if raw:
        data = bytes(claimed.job.payload)
        message = f"{message}; raw payload ({len(data)} bytes): {data[:RAW_KEEP]!r}"
    attempt_error = AttemptError(
        attempt=claimed.lease.attempt, kind=kind, type=type(error).__qualname__, message=message
    )
    return Failed(claimed.lease, reason, attempt_error)
