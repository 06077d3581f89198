"""How calls become JobSpecs: what every call of one task under one set of options shares (its
queue, priority, budgets, timing, headers and, unless keyed by the arguments, its limits) is a
Shape, worked out once per batch; only the arguments, the id and the envelope are per call.

A batch enqueue of one task spent half its Python time redoing the shared part for each call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from errands import codec, envelope
from errands.clock import to_ms
from errands.enqueue_hooks import added_headers
from errands.job import JobId, JobSpec, OnFailure, new_job_id
from errands.limits import Limit

if TYPE_CHECKING:
    from errands.task import Call, CallOptions, Task


@dataclass(frozen=True, slots=True)
class Shape:
    """The part of a JobSpec that every call of `task` with `options`, enqueued at `now`,
    shares."""

    task: Task[..., Any]
    options: CallOptions
    now: datetime
    scheduled_at: datetime | None
    queue: str
    priority: int
    max_attempts: int
    result_ttl: timedelta
    result_ttl_ms: int
    timeout_ms: int | None
    headers: dict[str, str]
    #: None when the limits are keyed by the call's arguments (worked out per call).
    limits: tuple[Limit, ...] | None

    @classmethod
    def of(cls, task: Task[..., Any], options: CallOptions) -> Shape:
        """The shape of `task`'s calls with `options`, enqueued now."""
        defaults = task.defaults
        now = task.app.clock.now()
        queue = options.queue or defaults.queue
        result_ttl = defaults.result_ttl if options.result_ttl is None else options.result_ttl
        keyed = task.keyed_limits(options.limits)
        return cls(
            task=task,
            options=options,
            now=now,
            scheduled_at=options.eta or (now + options.delay if options.delay else None),
            queue=queue,
            priority=defaults.priority if options.priority is None else options.priority,
            max_attempts=options.max_attempts or defaults.max_attempts,
            result_ttl=result_ttl,
            result_ttl_ms=to_ms(result_ttl),
            timeout_ms=to_ms(defaults.timeout) if defaults.timeout else None,
            headers=dict(options.headers) if options.headers else {},
            limits=None if keyed else task.limits_for((), {}, options.limits, queue),
        )

    def spec(
        self,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        after: Sequence[JobId] = (),
        workflow: dict[str, str] | None = None,
        on_failure: OnFailure = "cancel",
    ) -> JobSpec:
        """One call as a JobSpec (see Task.build_spec)."""
        task, options = self.task, self.options
        given = [None, *args] if workflow and workflow.get("input") != "none" else args
        problem = task.misfit(given, kwargs)
        if problem:
            raise TypeError(f"arguments do not fit task {task.name}: {problem}")
        job_id = new_job_id()
        headers = self.headers
        hooks = task.app.enqueue_hooks
        if hooks:  # tracing's traceparent; the call's own headers win
            headers = {**added_headers(hooks, task.name, self.queue, job_id), **headers}
        max_crashes = task.defaults.max_crashes
        payload = envelope.encode(
            envelope.Envelope(
                v=envelope.VERSION,
                id=job_id,
                task=task.name,
                queue=self.queue,
                priority=self.priority,
                args=codec.to_wire(list(args)),
                kwargs=codec.to_wire(kwargs) if kwargs else {},
                enqueued_at=self.now,
                scheduled_at=self.scheduled_at,
                max_attempts=self.max_attempts,
                max_crashes=max_crashes,
                timeout_ms=self.timeout_ms,
                result_ttl_ms=self.result_ttl_ms,
                idempotency_key=options.idempotency_key,
                depends_on=list(after) or None,
                workflow=workflow,
                exchange=options.exchange,
                routing_key=options.routing_key,
                headers=headers,
            )
        )
        limits = self.limits
        if limits is None:
            limits = task.limits_for(given, kwargs, options.limits, self.queue)
        return JobSpec(
            id=job_id,
            task=task.name,
            queue=self.queue,
            payload=payload,
            priority=self.priority,
            scheduled_at=self.scheduled_at,
            max_attempts=self.max_attempts,
            max_crashes=max_crashes,
            result_ttl=self.result_ttl,
            idempotency_key=options.idempotency_key,
            depends_on=tuple(after),
            on_failure=on_failure,
            limits=limits,
            workflow_id=workflow["id"] if workflow else None,
        )


def specs_of(calls: Sequence[Call]) -> list[JobSpec]:
    """The JobSpecs of `calls`, in order; a run of calls of one task with the same options
    (as `task.enqueue_many` makes) shares one Shape."""
    specs: list[JobSpec] = []
    shape: Shape | None = None
    for call in calls:
        if shape is None or call.task is not shape.task or call.options is not shape.options:
            shape = Shape.of(call.task, call.options)
        specs.append(shape.spec(call.args, call.kwargs))
    return specs
