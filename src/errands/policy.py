"""Policy: what the end of an attempt means for its job — retry, dead-letter, crash cap, cancel.

Decided once, here, from the job's counters and its task's settings, for every pool and every
broker. Brokers store the explicit transition (an Outcome) they are handed and decide nothing;
the allowed moves stay those of job.TRANSITIONS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from errands.brokers.contract import Broker, Claimed
from errands.errors import Retry
from errands.job import AttemptError, ErrorKind, FailReason, JobId
from errands.outcome import Cancelled, Crashed, Failed, Outcome, Retrying
from errands.retry import RetryPolicy


def after_error(
    claimed: Claimed, error: BaseException, recorded: AttemptError, retry: RetryPolicy
) -> Retrying | Failed:
    """An attempt raised `error` (recorded as `recorded`): retry after the policy's backoff (or
    the task's own `Retry(in_=...)`), or dead-letter once max_attempts failures are spent or the
    error is one that never retries."""
    failures = claimed.job.failures + 1
    if failures >= claimed.job.max_attempts or not retry.retries(error):
        return Failed(claimed.lease, FailReason.ERROR, recorded)
    if isinstance(error, Retry) and error.in_ is not None:
        return Retrying(claimed.lease, recorded, error.in_)
    return Retrying(claimed.lease, recorded, retry.delay(failures))


def after_crash(
    claimed: Claimed, error: AttemptError, delay: timedelta = timedelta(0)
) -> Crashed | Failed:
    """The process running the attempt died: run again (due at once unless `delay`), or
    dead-letter with reason `crashed` once this crash reaches max_crashes, so a job that kills
    every worker it touches (a poison pill) stops doing so."""
    if claimed.job.crashes + 1 >= claimed.job.max_crashes:
        return Failed(claimed.lease, FailReason.CRASHED, error)
    return Crashed(claimed.lease, error, delay)


def after_lapse(claimed: Claimed, *, gone: bool, now: datetime) -> Outcome:
    """A job reclaimed from a worker that stopped extending its lease (or is known `gone`):
    cancelled if a cancel was pending, else a crash of its attempt."""
    job = claimed.job
    if job.cancel_requested:
        return Cancelled(claimed.lease)
    if gone:
        kind, message = "WorkerGone", f"worker {job.worker_id} is gone (its process ended)"
    else:
        kind, message = "LeaseExpired", f"lease of worker {job.worker_id} expired"
    error = AttemptError(job.attempt, ErrorKind.LEASE_EXPIRED, kind, message, at=now)
    return after_crash(claimed, error)


@dataclass(frozen=True, slots=True)
class RescueReport:
    """What one rescue pass did with the jobs it reclaimed."""

    retried: list[JobId] = field(default_factory=list)
    failed: list[JobId] = field(default_factory=list)
    cancelled: list[JobId] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Jobs moved in this pass."""
        return len(self.retried) + len(self.failed) + len(self.cancelled)


async def rescue(
    broker: Broker,
    *,
    limit: int,
    lease: timedelta,
    now: datetime,
    workers_gone: tuple[str, ...] = (),
) -> RescueReport:
    """Reclaim up to `limit` jobs whose lease expired or whose worker is gone, and settle each
    by the policy above: two broker calls, whatever the number of jobs."""
    reclaimed = await broker.reclaim(limit=limit, lease=lease, workers_gone=workers_gone)
    if not reclaimed:
        return RescueReport()
    gone = set(workers_gone)
    outcomes = [after_lapse(c, gone=c.job.worker_id in gone, now=now) for c in reclaimed]
    applied = await broker.finish(outcomes)
    report = RescueReport()
    for outcome, ok in zip(outcomes, applied, strict=True):
        if not ok:
            continue  # reclaimed again by another rescuer meanwhile: it settles the job
        job_id = outcome.lease.job_id
        if isinstance(outcome, Cancelled):
            report.cancelled.append(job_id)
        elif isinstance(outcome, Failed):
            report.failed.append(job_id)
        else:
            report.retried.append(job_id)
    return report
