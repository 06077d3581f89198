"""The API's request and response bodies as msgspec Structs: they check what comes in and
give the OpenAPI document its schemas (openapi.py), so the two never disagree.

Arguments and results travel as JSON with errands' tagged values (docs/protocol.md), so they
are typed `Any` here. Durations are seconds (numbers), instants RFC 3339 strings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

Seconds = Annotated[float, msgspec.Meta(ge=0, le=10**9, description="a duration in seconds")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class EnqueueRequest(msgspec.Struct, forbid_unknown_fields=True):
    """One job to store: a task by name (registered by a Python worker or not), its arguments
    and the per-call options of `task.options(...)`."""

    task: Name
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    queue: Name | None = None
    priority: int | None = None
    delay: Seconds | None = None
    eta: datetime | None = None
    idempotency_key: str | None = None
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=10**6)] | None = None
    result_ttl: Seconds | None = None
    headers: dict[str, str] | None = None
    exchange: Name | None = None
    routing_key: str | None = None


class BatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Jobs stored in one atomic write: all of them or none."""

    jobs: Annotated[list[EnqueueRequest], msgspec.Meta(min_length=1, max_length=10_000)]


class PublishRequest(msgspec.Struct, forbid_unknown_fields=True):
    """An event: one job per task subscribed to a pattern the topic matches."""

    topic: Name
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    event_id: str | None = None


class EnqueuedJob(msgspec.Struct):
    """A stored job's id; `duplicate` when an idempotency key (or the id) matched a job
    already stored, which is then the job to wait for."""

    id: str
    duplicate: bool


class EnqueueResponse(msgspec.Struct):
    """The jobs stored, in the order asked (a routed call gives one per matching queue)."""

    jobs: list[EnqueuedJob]


class ClaimRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Take up to `n` jobs of the queue, each under a lease of `lease` seconds; with `wait`,
    hold the request until a job is ready (at most `wait` seconds) instead of answering empty.

    The server holds them to its limits: n to 100, lease to 1 s .. 1 h (30 s when null), wait
    to 60 s (`errands serve --max-wait`)."""

    worker_id: Name
    n: Annotated[int, msgspec.Meta(ge=1)] = 1
    lease: Seconds | None = None
    wait: Seconds = 0


class ClaimedJob(msgspec.Struct):
    """A job now held by the claiming client until `lease_expires_at`; every later call about
    it must present `token`."""

    id: str
    task: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    headers: dict[str, str]
    attempt: int
    max_attempts: int
    token: str
    lease_expires_at: datetime
    timeout_ms: int | None = None


class ClaimResponse(msgspec.Struct):
    """The jobs claimed (none when the queue had nothing ready)."""

    jobs: list[ClaimedJob]


class ProgressReport(msgspec.Struct, forbid_unknown_fields=True):
    """What a running job says about itself."""

    fraction: Annotated[float, msgspec.Meta(ge=0, le=1)]
    message: str = ""


class ExtendRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Keep the lease `token` for `lease` more seconds; also the client's heartbeat."""

    token: Name
    worker_id: Name
    lease: Seconds | None = None
    progress: ProgressReport | None = None
    concurrency: Annotated[int, msgspec.Meta(ge=1)] = 1
    hostname: str = ""


class ExtendResponse(msgspec.Struct):
    """The lease's new expiry, and whether a cancel was asked for (stop, then finish with
    outcome "cancelled")."""

    lease_expires_at: datetime
    cancel_requested: bool


class RemoteError(msgspec.Struct, forbid_unknown_fields=True):
    """What went wrong in the client's handler, kept as text with the job."""

    type: str = "Error"
    message: str = ""
    traceback: str = ""


class FinishRequest(msgspec.Struct, forbid_unknown_fields=True):
    """How the attempt ended, under the lease `token`.

    "completed" stores `result`; "failed" counts a failure and retries with the task's backoff
    until max_attempts (never, with `retry: false`), then dead-letters; "retry" counts a
    failure and runs again after `delay` seconds (dead-letters once attempts are spent);
    "cancelled" ends the job after a cancel request.
    """

    token: Name
    outcome: Literal["completed", "failed", "retry", "cancelled"]
    result: Any = None
    error: RemoteError | None = None
    delay: Seconds | None = None
    retry: bool = True


class FinishResponse(msgspec.Struct):
    """The job's state after the outcome was stored."""

    id: str
    state: str


class Health(msgspec.Struct):
    """The API answers."""

    status: str
