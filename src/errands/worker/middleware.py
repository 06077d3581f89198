"""Middleware: hooks around a worker's life and each job it runs, for logging, metrics, tracing.

A middleware overrides the hooks it needs; every hook runs on the worker's event loop, in the
worker process, whichever pool ran the job, and must return quickly. A hook that raises is
logged and skipped: an observer never changes a job's outcome. The per-job log line (JobLog) is
the first middleware; an App's list is in `app.middleware`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from errands.brokers.contract import Claimed
from errands.outcome import Completed, Crashed, Failed, Outcome, Retrying

if TYPE_CHECKING:
    from errands.worker.worker import Worker

log = logging.getLogger("errands.worker")
jobs_log = logging.getLogger("errands.jobs")


class Middleware:
    """Base class: every hook does nothing."""

    def on_worker_start(self, worker: Worker) -> None:
        """The worker is ready and about to claim its first jobs."""

    def on_worker_stop(self, worker: Worker) -> None:
        """The worker has drained and is about to exit."""

    def before_job(self, claimed: Claimed) -> None:
        """A claimed job is about to run (its payload is not decoded yet)."""

    def after_job(self, claimed: Claimed, outcome: Outcome, seconds: float) -> None:
        """The job's attempt ended with `outcome` after `seconds`; the outcome is on its way to
        the broker."""


class Hooks:
    """The App's middleware in order, each call isolated from the others' failures. Only hooks
    a middleware overrides are called: a worker pays per job for what is there, nothing more."""

    def __init__(self, middleware: Sequence[Middleware]) -> None:
        def overriding(name: str) -> list[Callable[..., None]]:
            base = getattr(Middleware, name)
            return [getattr(m, name) for m in middleware if getattr(type(m), name) is not base]

        self._started = overriding("on_worker_start")
        self._stopped = overriding("on_worker_stop")[::-1]
        self._before = overriding("before_job")
        self._after = overriding("after_job")[::-1]

    def worker_started(self, worker: Worker) -> None:
        """Call every on_worker_start."""
        _each(self._started, worker)

    def worker_stopped(self, worker: Worker) -> None:
        """Call every on_worker_stop, last middleware first."""
        _each(self._stopped, worker)

    def before(self, claimed: Claimed) -> None:
        """Call every before_job."""
        if self._before:
            _each(self._before, claimed)

    def after(self, claimed: Claimed, outcome: Outcome, seconds: float) -> None:
        """Call every after_job, last middleware first."""
        if self._after:
            _each(self._after, claimed, outcome, seconds)


def _each(hooks: list[Callable[..., None]], *args: object) -> None:
    for hook in hooks:
        try:
            hook(*args)
        except Exception:
            log.exception("middleware %s failed", getattr(hook, "__qualname__", hook))


class JobLog(Middleware):
    """One log line per finished attempt on the `errands.jobs` logger: task, id, attempt,
    duration and outcome. Completed and other quiet endings are INFO (off with `info=False`,
    ERRANDS_LOG_JOBS=0); a retry is a WARNING and a dead letter or crash an ERROR, always."""

    def __init__(self, *, info: bool = True) -> None:
        self.info = info

    def after_job(self, claimed: Claimed, outcome: Outcome, seconds: float) -> None:
        """Log how the attempt ended."""
        if isinstance(outcome, Completed) and not (
            self.info and jobs_log.isEnabledFor(logging.INFO)
        ):
            return  # the hot path: nothing to format
        job, attempt = claimed.job, claimed.lease.attempt
        took = f"{seconds * 1000:.1f}ms"
        match outcome:
            case Retrying(error=error, delay=delay):
                jobs_log.warning(
                    "%s %s attempt %d retrying in %.1fs after %s (%s: %s)",
                    job.task,
                    job.id,
                    attempt,
                    delay.total_seconds(),
                    took,
                    error.type,
                    error.message,
                )
            case Failed(reason=reason, error=error):
                jobs_log.error(
                    "%s %s attempt %d failed (%s) after %s%s",
                    job.task,
                    job.id,
                    attempt,
                    reason,
                    took,
                    f": {error.type}: {error.message}" if error else "",
                )
            case Crashed(error=error):
                jobs_log.error(
                    "%s %s attempt %d crashed after %s: %s: %s",
                    job.task,
                    job.id,
                    attempt,
                    took,
                    error.type,
                    error.message,
                )
            case _ if self.info:
                word = "completed" if isinstance(outcome, Completed) else type(outcome).__name__
                jobs_log.info(
                    "%s %s attempt %d %s in %s", job.task, job.id, attempt, word.lower(), took
                )
