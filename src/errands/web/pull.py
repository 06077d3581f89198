"""The pull API: workers in any language claim jobs under a lease, extend it, and finish them
with the lease's token, through the same broker verbs and policy as the Python worker.

A token that no longer holds (the lease lapsed and the job was rescued, or it was finished
already) is refused with 409 and changes nothing: the fencing of docs/concepts.md, over HTTP.
"""

from __future__ import annotations

import functools
import time
from datetime import timedelta

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from errands import envelope
from errands.app import App
from errands.brokers.contract import Broker, Claimed, ClaimOptions, WorkerInfo
from errands.errors import JobNotFound, MalformedMessage, Retry
from errands.job import AttemptError, ErrorKind, FailReason, JobState, Progress
from errands.lease import Lease
from errands.outcome import Cancelled, Completed, Failed, Outcome, Retrying
from errands.policy import after_error
from errands.retry import RetryPolicy
from errands.web.config import WebConfig
from errands.web.context import body, context
from errands.web.problems import Problem
from errands.web.schemas import (
    ClaimedJob,
    ClaimRequest,
    ClaimResponse,
    ExtendRequest,
    ExtendResponse,
    FinishRequest,
    FinishResponse,
)
from errands.web.views import JSON
from errands.workflow.inputs import supplied

_STATE_AFTER = {
    Completed: JobState.COMPLETED,
    Failed: JobState.FAILED,
    Retrying: JobState.RETRYABLE,
    Cancelled: JobState.CANCELLED,
}


class RemoteFailure(Exception):
    """An error a pull client reported: it stands for the client's exception in the policy."""


def lease_of(config: WebConfig, seconds: float | None) -> timedelta:
    """The lease asked for, held to the configured range."""
    if seconds is None:
        return config.default_lease
    return min(max(timedelta(seconds=seconds), config.min_lease), config.max_lease)


async def claim(request: Request) -> Response:
    """POST /queues/{name}/claim: take up to n ready jobs, waiting up to `wait` for one."""
    ctx = context(request)
    asked = await body(request, ClaimRequest)
    queue = request.path_params["name"]
    options = ClaimOptions(
        [queue],
        min(asked.n, ctx.config.max_claim),
        lease_of(ctx.config, asked.lease),
        asked.worker_id,
    )
    deadline = time.monotonic() + min(asked.wait, ctx.config.max_wait.total_seconds())
    while True:
        claimed = await ctx.app.call_broker(lambda b: b.claim(options))
        jobs = await _handed(ctx.app, claimed)
        left = deadline - time.monotonic()
        # A client gone mid-wait gets no job: one claimed for it would wait out its lease.
        if jobs or left <= 0 or await request.is_disconnected():
            break
        # A hint only: re-claim at least every idle_wait, as a Python worker does.
        nap = timedelta(seconds=min(left, ctx.app.settings.idle_wait.total_seconds()))
        await ctx.app.call_broker(functools.partial(_nap, queue=queue, timeout=nap))
    if ctx.meter is not None and jobs:
        ctx.meter.claimed(queue, len(jobs))
    return JSON(ClaimResponse(jobs))


async def _nap(broker: Broker, *, queue: str, timeout: timedelta) -> None:
    await broker.wait_ready([queue], timeout)


async def _handed(app: App, claimed: list[Claimed]) -> list[ClaimedJob]:
    """The claimed jobs as a client sees them; a payload that does not decode (or names another
    job) is dead-lettered `malformed` here, as the Python worker would."""
    jobs: list[ClaimedJob] = []
    dead: list[Outcome] = []
    for one in claimed:
        fed = await app.call_broker(functools.partial(supplied, claimed=one))  # workflow inputs
        if not isinstance(fed, Claimed):
            dead.append(fed)
            continue
        try:
            env = envelope.decode(bytes(fed.job.payload))
            if (env.id, env.task) != (fed.job.id, fed.job.task):
                raise MalformedMessage("mismatch", "the envelope names another job or task")
        except MalformedMessage as error:
            recorded = AttemptError(
                fed.lease.attempt, ErrorKind.MALFORMED, "MalformedMessage", str(error)
            )
            dead.append(Failed(fed.lease, FailReason.MALFORMED, recorded))
            continue
        jobs.append(
            ClaimedJob(
                id=fed.job.id,
                task=fed.job.task,
                queue=fed.job.queue,
                args=env.args,
                kwargs=env.kwargs,
                headers=env.headers,
                attempt=fed.lease.attempt,
                max_attempts=fed.job.max_attempts,
                token=fed.lease.token,
                lease_expires_at=fed.lease.expires_at,
                timeout_ms=env.timeout_ms,
            )
        )
    if dead:
        await app.call_broker(lambda b: b.finish(dead))
    return jobs


async def extend(request: Request) -> Response:
    """POST /jobs/{id}/extend: keep the lease; the client's heartbeat and progress ride along."""
    ctx = context(request)
    asked = await body(request, ExtendRequest)
    job_id = request.path_params["id"]
    now = ctx.app.clock.now()
    # Brokers fence on the token alone; the attempt in a Lease is informational.
    held = Lease(job_id, 0, asked.token, now)
    beat = WorkerInfo(
        id=asked.worker_id,
        hostname=asked.hostname or (request.client.host if request.client else ""),
        pid=0,
        queues=(),
        concurrency=asked.concurrency,
        started_at=now,
        running=1,
    )
    progress = (
        {job_id: Progress(asked.progress.fraction, asked.progress.message)}
        if asked.progress
        else {}
    )
    lease = lease_of(ctx.config, asked.lease)
    extended = await ctx.app.call_broker(
        lambda b: b.extend([held], lease, heartbeat=beat, progress=progress)
    )
    if not extended.leases:
        raise _stale(job_id)
    return JSON(ExtendResponse(extended.leases[0].expires_at, job_id in extended.cancel_requested))


async def finish(request: Request) -> Response:
    """POST /jobs/{id}/finish: store how the attempt ended, under the lease's token."""
    ctx = context(request)
    asked = await body(request, FinishRequest)
    job_id = request.path_params["id"]
    jobs = await ctx.app.call_broker(lambda b: b.get([job_id]))
    if not jobs:
        raise JobNotFound(job_id)
    job = jobs[0]
    if job.state is not JobState.RUNNING:
        raise _stale(job_id)
    lease = Lease(job.id, job.attempt, asked.token, job.lease_expires_at or ctx.app.clock.now())
    outcome = outcome_of(ctx.app, Claimed(job, lease), asked)
    [applied] = await ctx.app.call_broker(lambda b: b.finish([outcome]))
    if not applied:
        raise _stale(job_id)
    state = _STATE_AFTER[type(outcome)]
    if ctx.meter is not None:
        ctx.meter.finished(job.queue, state.value)
    return JSON(FinishResponse(job_id, state.value))


def outcome_of(app: App, claimed: Claimed, asked: FinishRequest) -> Outcome:
    """The Outcome a finish asks for; failures go through errands.policy with the registered
    task's retry policy (the default one for a task only other languages run)."""
    if asked.outcome == "completed":
        return Completed(claimed.lease, msgspec.json.encode(asked.result))
    if asked.outcome == "cancelled":
        return Cancelled(claimed.lease)
    reported = asked.error
    recorded = AttemptError(
        attempt=claimed.lease.attempt,
        kind=ErrorKind.EXCEPTION,
        type=reported.type if reported else "Error",
        message=reported.message if reported else "",
        traceback=reported.traceback if reported else "",
        at=app.clock.now(),
    )
    if asked.outcome == "failed" and not asked.retry:
        return Failed(claimed.lease, FailReason.ERROR, recorded)
    task = app.registry.get(claimed.job.task)
    policy = task.defaults.retry if task is not None else RetryPolicy()
    error: BaseException = RemoteFailure(recorded.message)
    if asked.outcome == "retry":
        error = Retry(timedelta(seconds=asked.delay) if asked.delay is not None else None)
    return after_error(claimed, error, recorded, policy)


def _stale(job_id: str) -> Problem:
    return Problem(
        409,
        "lease-lost",
        f"the lease token of job {job_id} no longer holds (it expired and the job was taken "
        "back, or the job was finished): drop the job, and never report on it again",
    )


ROUTES = [
    Route("/queues/{name}/claim", claim, methods=["POST"]),
    Route("/jobs/{id}/extend", extend, methods=["POST"]),
    Route("/jobs/{id}/finish", finish, methods=["POST"]),
]
