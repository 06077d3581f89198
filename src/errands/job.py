"""Job values: the state machine every layer shares, what a producer asks for, what is stored.

Values only: nothing here talks to a broker (brokers/) or runs a task (worker/).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final, Literal, Self

import msgspec

from errands.limits import Limit

JobId = str
#: A workflow's failure policy (errands.chain(..., on_failure=...)), stored with each job that
#: waits for others.
OnFailure = Literal["cancel", "continue"]


class JobState(StrEnum):
    """Where a job is in its life; the same words in tables, scripts, logs and the CLI."""

    PENDING = "pending"  # waits for the jobs it depends on (a workflow's later steps)
    SCHEDULED = "scheduled"
    AVAILABLE = "available"
    RUNNING = "running"
    RETRYABLE = "retryable"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True for states a job never leaves except by an operator's requeue or pruning."""
        return self in TERMINAL_STATES


TERMINAL_STATES: Final = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})
WAITING_STATES: Final = frozenset({JobState.SCHEDULED, JobState.AVAILABLE, JobState.RETRYABLE})

#: Every allowed move; brokers follow it and the conformance suite holds them to it.
TRANSITIONS: Final[Mapping[JobState, frozenset[JobState]]] = {
    # Released by the broker in the write that ends its last dependency; cancelled at once
    # when a dependency fails under the "cancel" policy, or by a cancel.
    JobState.PENDING: frozenset({JobState.AVAILABLE, JobState.SCHEDULED, JobState.CANCELLED}),
    JobState.SCHEDULED: frozenset({JobState.AVAILABLE, JobState.CANCELLED}),
    JobState.AVAILABLE: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.RUNNING: frozenset(
        {
            JobState.AVAILABLE,  # released at shutdown
            JobState.SCHEDULED,  # snoozed
            JobState.RETRYABLE,
            JobState.COMPLETED,
            JobState.FAILED,
            JobState.CANCELLED,
        }
    ),
    JobState.RETRYABLE: frozenset({JobState.AVAILABLE, JobState.CANCELLED}),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset({JobState.AVAILABLE}),
    JobState.CANCELLED: frozenset({JobState.AVAILABLE}),
}


class FailReason(StrEnum):
    """Why a job is dead-lettered (`failed`): a closed set, machine-readable."""

    ERROR = "error"  # attempts spent, or an error that never retries
    CRASHED = "crashed"  # max_crashes reached
    MALFORMED = "malformed"  # payload could not be decoded; raw bytes kept
    UNKNOWN_TASK = "unknown_task"
    BAD_ARGUMENTS = "bad_arguments"


class CancelReason(StrEnum):
    """Why a job was cancelled."""

    REQUESTED = "requested"
    PARENT_FAILED = "parent_failed"


class ErrorKind(StrEnum):
    """How one attempt failed."""

    EXCEPTION = "exception"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    SIGNAL = "signal"
    EXIT = "exit"
    LEASE_EXPIRED = "lease_expired"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class AttemptError:
    """One failed attempt, kept as text so it never needs the remote code to be read."""

    attempt: int
    kind: ErrorKind
    type: str
    message: str
    traceback: str = ""
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """What a running job last said about itself."""

    fraction: float
    message: str = ""


class JobSpec(msgspec.Struct, frozen=True):
    """What a producer asks to insert: not stored yet, so it has no state.

    Job and JobSpec are frozen msgspec Structs rather than dataclasses: one is built per job
    on every enqueue and claim, and a Struct is built several times faster.

    `payload` is the encoded envelope (envelope.py); the other fields repeat what a broker
    must index or act on without decoding it.
    """

    id: JobId
    task: str
    queue: str
    payload: bytes
    priority: int = 0
    scheduled_at: datetime | None = None  # None: runnable now
    max_attempts: int = 3
    max_crashes: int = 3
    result_ttl: timedelta = timedelta(days=1)
    idempotency_key: str | None = None
    #: Jobs (specs earlier in the same enqueue_many) this one waits for: it is stored
    #: `pending` and released by the broker once every one of them has ended.
    depends_on: tuple[JobId, ...] = ()
    #: What a dependency that ends without completing does to this job: "cancel" (cancelled
    #: at once, reason parent_failed) or "continue" (it still counts as ended).
    on_failure: OnFailure = "cancel"
    #: Rate and concurrency limits the claim holds this job to (errands/limits.py): at most
    #: the task's (or its key's) and the queue's. A limited job stays available until they
    #: admit it.
    limits: tuple[Limit, ...] = ()
    #: The workflow (errands.chain, group, chord) this job is a step of, as in its envelope:
    #: brokers index it so list_jobs finds a workflow's members without decoding payloads.
    workflow_id: str | None = None


class Job(msgspec.Struct, frozen=True):
    """One stored job as a broker returned it: a snapshot, never updated in place."""

    id: JobId
    task: str
    queue: str
    state: JobState
    payload: bytes
    priority: int = 0
    attempt: int = 0
    failures: int = 0
    crashes: int = 0
    max_attempts: int = 3
    max_crashes: int = 3
    enqueued_at: datetime | None = None
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_expires_at: datetime | None = None
    worker_id: str | None = None
    result: bytes | None = None
    result_ttl: timedelta = timedelta(days=1)
    result_expires_at: datetime | None = None
    idempotency_key: str | None = None
    fail_reason: FailReason | None = None
    cancel_reason: CancelReason | None = None
    cancel_requested: bool = False
    progress: Progress | None = None
    errors: tuple[AttemptError, ...] = ()
    workflow_id: str | None = None  # the workflow this job is a step of (JobSpec.workflow_id)

    @property
    def last_error(self) -> AttemptError | None:
        """The most recent failed attempt, if any."""
        return self.errors[-1] if self.errors else None

    def evolve(self, **changes: object) -> Self:
        """A copy with `changes` applied; this value is unchanged."""
        return msgspec.structs.replace(self, **changes)


_last_ms = 0
_seq = 0


def new_job_id() -> JobId:
    """A time-ordered id in the UUIDv7 layout: ids sort by creation time within a process."""
    global _last_ms, _seq
    ms = time.time_ns() // 1_000_000
    if ms <= _last_ms:
        # Same millisecond (or the clock stepped back): bump a counter so ids made in a burst
        # still sort in order; past 12 bits, borrow the next millisecond.
        ms, _seq = _last_ms, _seq + 1
        if _seq > 0xFFF:
            ms, _seq = ms + 1, 0
    else:
        _seq = 0
    _last_ms = ms
    # random (reseeded in every forked child) is enough for uniqueness and avoids a syscall.
    value = (ms & 0xFFFFFFFFFFFF) << 80 | 0x7 << 76 | (_seq & 0xFFF) << 64
    value |= 0b10 << 62 | random.getrandbits(62)
    hexed = f"{value:032x}"
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"
