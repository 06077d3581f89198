"""Inputs: a released workflow step gets the results of the steps it waited for, fetched from
the broker by the worker that claimed it, before the job is decoded.

The results are written into the claimed job's envelope as its first argument (a list after a
group), so every pool, a process-pool child included, runs the step as any other job.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from errands import codec, envelope
from errands.brokers.contract import Broker, Claimed
from errands.errors import MalformedMessage
from errands.job import AttemptError, ErrorKind, FailReason, Job, JobState
from errands.outcome import Failed, Outcome
from errands.workflow.failure import StepFailed

#: Only envelopes that hold this can take inputs: a substring test spares every other job a
#: second decode.
_MARK: Final = b'"depends_on"'
_wire = msgspec.json.Decoder()


def takes_inputs(claimed: Claimed) -> bool:
    """True if the job may be a workflow step that takes results: a substring test, so the
    worker awaits nothing more for every other job."""
    return _MARK in bytes(claimed.job.payload)  # bytes of bytes is the same object: no copy


async def supplied(broker: Broker, claimed: Claimed) -> Claimed | Outcome:
    """`claimed` with the results of the jobs it depends on placed first among its arguments,
    when it takes them; a Failed outcome (bad_arguments) if one is gone or its result expired."""
    payload = bytes(claimed.job.payload)
    if not takes_inputs(claimed):
        return claimed
    try:
        env = envelope.decode(payload)
    except MalformedMessage:
        return claimed  # prepare() dead-letters it with the reason
    takes = (env.workflow or {}).get("input")
    if not env.depends_on or takes not in ("value", "list"):
        return claimed
    found = {job.id: job for job in await broker.get(env.depends_on)}
    values: list[Any] = []
    for job_id in env.depends_on:
        job = found.get(job_id)
        if job is None or (job.state is JobState.COMPLETED and job.result is None):
            why = "is no longer stored" if job is None else "kept no result (it expired)"
            return _failed(claimed, f"the step {job_id} whose result this step takes {why}")
        if job.state is JobState.COMPLETED and job.result is not None:
            values.append(_wire.decode(job.result))
        else:
            values.append(_failure(job))
    first = values if takes == "list" else values[0]
    # Without depends_on the envelope is an ordinary job's: a second look here passes it by.
    fed = msgspec.structs.replace(env, args=[first, *env.args], depends_on=None)
    try:
        data = envelope.encode(fed)
    except ValueError as error:  # the results pushed the payload past the cap
        return _failed(claimed, str(error))
    return Claimed(claimed.job.evolve(payload=data), claimed.lease)


def _failure(job: Job) -> Any:
    """The wire form of the StepFailed that stands for `job`, which did not complete."""
    error = job.last_error
    reason = job.fail_reason or job.cancel_reason
    return codec.to_wire(
        StepFailed(
            job_id=job.id,
            state=str(job.state),
            reason="" if reason is None else str(reason),
            error_type=error.type if error else "",
            message=error.message if error else "",
        )
    )


def _failed(claimed: Claimed, message: str) -> Failed:
    error = AttemptError(
        attempt=claimed.lease.attempt, kind=ErrorKind.EXCEPTION, type="LookupError", message=message
    )
    return Failed(claimed.lease, FailReason.BAD_ARGUMENTS, error)
