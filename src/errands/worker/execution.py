"""Execution: one claimed job in, one Outcome out, as small named steps.

The one place where exceptions become Outcomes, for every pool: pools decide where the function
runs (a thread, a child process, the loop) and call `attempt` / `attempt_async` there, or
`timed_out` when they stop it; policy.py decides what the ending means for the job.
"""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from errands import codec, envelope
from errands.brokers.contract import Claimed
from errands.current import RunningJob, enter, forget_stop, leave
from errands.errors import MalformedMessage, Timeout
from errands.job import AttemptError, ErrorKind, FailReason, Progress
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
    job: RunningJob


def prepare(
    claimed: Claimed,
    registry: Mapping[str, Task[..., Any]],
    report: Callable[[Progress], None] | None = None,
) -> Invocation | Outcome:
    """Decode the payload, resolve the task, bind the arguments; or the Failed outcome.
    `report` receives the task's `errands.progress` calls."""
    try:
        env = envelope.decode(bytes(claimed.job.payload))
        args, kwargs = codec.from_wire(env.args), codec.from_wire(env.kwargs)
        timeout = timedelta(milliseconds=env.timeout_ms) if env.timeout_ms else None
    except Exception as error:  # MalformedMessage, or a tagged value that does not parse
        return _dead(claimed, FailReason.MALFORMED, ErrorKind.MALFORMED, error, raw=True)
    job = claimed.job
    if (env.id, env.task) != (job.id, job.task):
        # A row another program wrote with columns that contradict its envelope: running it
        # would answer the wrong job or run the wrong task.
        mismatch = MalformedMessage(
            "mismatch",
            f"the row says id={job.id!r} task={job.task!r}, "
            f"its envelope id={env.id!r} task={env.task!r}",
        )
        return _dead(claimed, FailReason.MALFORMED, ErrorKind.MALFORMED, mismatch, raw=True)
    task = registry.get(env.task)
    if task is None:
        known = ", ".join(sorted(registry)[:5]) or "none"
        unknown = LookupError(f"no task named {env.task!r} on this app (registered: {known})")
        return _dead(claimed, FailReason.UNKNOWN_TASK, ErrorKind.EXCEPTION, unknown)
    problem = task.misfit(args, kwargs)
    if problem:
        detail = TypeError(f"arguments do not fit {task.name}: {problem}")
        return _dead(claimed, FailReason.BAD_ARGUMENTS, ErrorKind.EXCEPTION, detail)
    running_job = RunningJob(
        job.id, job.task, job.queue, claimed.lease.attempt, env.headers, report
    )
    return Invocation(task, args, kwargs, timeout or task.defaults.timeout, running_job)


def attempt(claimed: Claimed, invocation: Invocation) -> Outcome:
    """Call the function here, in the calling thread (a pool thread, a process-pool child),
    and turn how it ended into an Outcome. A coroutine function gets an event loop of its own."""
    token = enter(invocation.job)
    try:
        value: Any = invocation.task.fn(*invocation.args, **invocation.kwargs)
        if inspect.iscoroutine(value):
            value = asyncio.run(value)
    except (Exception, SystemExit) as error:  # sys.exit() in a task ends the job, not the worker
        return raised(claimed, invocation, error)
    finally:
        leave(token)
        forget_stop(claimed.job.id, claimed.lease.attempt)
    return completed(claimed, value)


async def attempt_async(claimed: Claimed, invocation: Invocation) -> Outcome:
    """Await a coroutine function on the running loop, cancelled at its time limit."""
    token = enter(invocation.job)
    try:
        return await _attempt_here(claimed, invocation)
    finally:
        leave(token)
        forget_stop(claimed.job.id, claimed.lease.attempt)


async def _attempt_here(claimed: Claimed, invocation: Invocation) -> Outcome:
    if invocation.timeout is None:  # the common case, without a timeout scope's cost
        try:
            value: Any = invocation.task.fn(*invocation.args, **invocation.kwargs)
            if inspect.iscoroutine(value):
                value = await value
        except (Exception, SystemExit) as error:
            return raised(claimed, invocation, error)
        return completed(claimed, value)
    try:
        async with asyncio.timeout(invocation.timeout.total_seconds()) as scope:
            value = invocation.task.fn(*invocation.args, **invocation.kwargs)
            if inspect.iscoroutine(value):
                value = await value
    except (Exception, SystemExit) as error:
        if scope.expired():
            return timed_out(claimed, invocation, "time limit and was cancelled")
        return raised(claimed, invocation, error)
    if scope.expired():  # the task swallowed its cancellation: the limit still ended it
        return timed_out(claimed, invocation, "time limit and was cancelled")
    return completed(claimed, value)


def completed(claimed: Claimed, value: Any) -> Outcome:
    """The Outcome of a returned value; a value JSON cannot carry fails the job."""
    try:
        return Completed(claimed.lease, codec.dumps(value))
    except TypeError as error:
        return Failed(claimed.lease, FailReason.ERROR, error_of(claimed, error))


def raised(claimed: Claimed, invocation: Invocation, error: BaseException) -> Outcome:
    """The Outcome of an exception the attempt raised (or a task's SystemExit): retried or
    dead-lettered by the policy. The one place an exception becomes an Outcome."""
    recorded = error_of(claimed, error)
    return after_error(claimed, error, recorded, invocation.task.defaults.retry)


def timed_out(claimed: Claimed, invocation: Invocation, how: str) -> Outcome:
    """The Outcome of an attempt its pool stopped (or gave up on) at the time limit: failed
    with kind `timeout`, whatever the task did after, and retried like any failure. `how`
    ends the message: "... ran past its 2s <how>"."""
    limit = invocation.timeout.total_seconds() if invocation.timeout else 0.0
    late = Timeout(f"{invocation.task.name} ran past its {limit:g}s {how}")
    return after_error(
        claimed, late, error_of(claimed, late, ErrorKind.TIMEOUT), invocation.task.defaults.retry
    )


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
