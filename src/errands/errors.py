"""The ErrandsError tree, plus Retry and Timeout, which tasks raise or meet."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta


class ErrandsError(Exception):
    """Root of every error errands raises."""


class BrokerError(ErrandsError):
    """A broker could not do what was asked."""


class BrokerUnavailable(BrokerError):
    """The broker's storage could not be reached or stayed locked past the busy timeout."""


class BrokerFull(BrokerError):
    """The broker's storage is out of space; nothing of the failed write was stored."""


class UnknownBrokerScheme(BrokerError, ValueError):
    """A broker URL whose scheme no opener handles."""

    def __init__(self, url: str, known: Collection[str]) -> None:
        self.url, self.known = url, sorted(known)
        super().__init__(f"no broker for URL {url!r} (schemes known: {', '.join(self.known)})")


class JobNotFound(ErrandsError, LookupError):
    """No job with this id (never enqueued, or pruned)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"no job with id {job_id!r}")


class TaskNotRegistered(ErrandsError, LookupError):
    """A task name not in the app's registry."""

    def __init__(self, name: str, known: Collection[str]) -> None:
        self.name, self.known = name, sorted(known)
        hint = ", ".join(self.known[:5]) or "none"
        super().__init__(f"no task named {name!r} on this app (registered: {hint})")


class LeaseLost(ErrandsError):
    """A write presented a lease token that no longer holds."""


class MalformedMessage(ErrandsError, ValueError):
    """A payload that is not a valid envelope; `reason` is a short machine-readable cause."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"malformed message ({reason}): {detail}")


class JobFailed(ErrandsError):
    """The job ended without a result; the remote error is kept as text, never re-imported."""

    def __init__(
        self,
        job_id: str,
        state: str,
        reason: str | None,
        error_type: str,
        message: str,
        traceback: str,
    ) -> None:
        self.job_id, self.state, self.reason = job_id, state, reason
        self.error_type, self.remote_message, self.remote_traceback = (
            error_type,
            message,
            traceback,
        )
        why = f"{error_type}: {message}" if error_type else (reason or state)
        super().__init__(f"job {job_id} {state} ({reason or 'no reason'}): {why}")

    def __str__(self) -> str:
        text = super().__str__()
        return (
            f"{text}\n\nremote traceback:\n{self.remote_traceback}"
            if self.remote_traceback
            else text
        )


class ResultTimeout(ErrandsError, TimeoutError):
    """A wait for a job's result ran out of time; the job may still finish later.

    `unserved_queue` is the job's queue when no live worker (by heartbeat) serves it, the
    usual reason a first job never ends; the message then says how to start one for `target`.
    """

    def __init__(
        self,
        job_id: str,
        timeout: timedelta,
        state: str,
        *,
        unserved_queue: str | None = None,
        target: str = "module:app",
    ) -> None:
        self.job_id, self.timeout, self.state = job_id, timeout, state
        self.unserved_queue = unserved_queue
        seconds = timeout.total_seconds()
        message = f"job {job_id} did not finish within {seconds:g}s (state: {state})"
        if unserved_queue is not None:
            message += (
                f"; no live worker serves queue {unserved_queue!r} "
                f"(start one: errands worker {target} --queues {unserved_queue})"
            )
        super().__init__(message)


class BlockingCallInEventLoop(ErrandsError, RuntimeError):
    """A blocking verb was called from a thread running an event loop; await its twin."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        super().__init__(
            f"{verb}() blocks and was called inside a running event loop; "
            f"use `await {verb}_async(...)` instead"
        )


class Retry(Exception):
    """Raised by a task to be run again after `in_` (or the retry policy's backoff).

    It counts as a failed attempt: after max_attempts the job is dead-lettered.
    """

    def __init__(self, in_: timedelta | None = None, *, reason: str = "retry requested") -> None:
        self.in_ = in_
        self.reason = reason
        super().__init__(reason)


class Timeout(ErrandsError):
    """Raised inside a task that ran past its time limit."""


class ScheduleNotFound(ErrandsError, LookupError):
    """No schedule by this name is declared in code or stored in the broker."""

    def __init__(self, name: str, known: Collection[str]) -> None:
        listed = ", ".join(sorted(known)[:10]) or "none"
        super().__init__(f"no schedule named {name!r} (known: {listed})")
        self.name = name


class ScheduleExists(ErrandsError, ValueError):
    """A schedule by this name exists already (declared in code or stored)."""

    def __init__(self, name: str, where: str) -> None:
        super().__init__(f"a schedule named {name!r} exists already ({where})")
        self.name = name


class ExchangeNotFound(ErrandsError, LookupError):
    """A message was sent to an exchange no one declared."""

    def __init__(self, name: str, known: Collection[str]) -> None:
        listed = ", ".join(sorted(known)[:10]) or "none"
        super().__init__(f"no exchange named {name!r} (declared: {listed})")
        self.name = name


class Unroutable(ErrandsError):
    """No binding of the exchange matched the message's routing key, and the exchange does not
    drop such messages (AMQP's mandatory flag); nothing was stored."""

    def __init__(self, exchange: str, routing_key: str) -> None:
        super().__init__(
            f"no binding of exchange {exchange!r} matches routing key {routing_key!r}; "
            "nothing was stored (bind a queue, or declare the exchange with unroutable='drop')"
        )
        self.exchange, self.routing_key = exchange, routing_key
