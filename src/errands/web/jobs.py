"""Routes about jobs: enqueue (one, a batch, an event), read, wait, cancel, requeue, list."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from errands import codec
from errands.app import App
from errands.brokers.contract import JobQuery
from errands.errors import JobNotFound
from errands.handle import JobHandle
from errands.job import Job, JobState
from errands.task import Call, RoutedTask, Task
from errands.web.context import body, context, query_int, query_seconds
from errands.web.problems import Problem
from errands.web.schemas import (
    BatchRequest,
    EnqueuedJob,
    EnqueueRequest,
    EnqueueResponse,
    PublishRequest,
)
from errands.web.views import JSON, JobPage, job_view

_STATES = {state.value: state for state in JobState}
_REQUEUEABLE = frozenset({JobState.FAILED, JobState.CANCELLED})


def call_of(app: App, request: EnqueueRequest) -> Call:
    """The call `request` asks for, as `app.by_name(task).options(...).call(...)` makes it: a
    task no worker of this App registers gets the App's defaults and no argument check."""
    fields: dict[str, Any] = {
        "priority": request.priority,
        "queue": request.queue,
        "eta": request.eta,
        "idempotency_key": request.idempotency_key,
        "max_attempts": request.max_attempts,
        "headers": request.headers,
    }
    if request.delay is not None:
        fields["delay"] = timedelta(seconds=request.delay)
    if request.result_ttl is not None:
        fields["result_ttl"] = timedelta(seconds=request.result_ttl)
    chosen = {name: value for name, value in fields.items() if value is not None}
    named = app.by_name(request.task)
    if request.exchange is not None:
        task: Task[..., Any] | RoutedTask[..., Any] = named.options(
            exchange=request.exchange, routing_key=request.routing_key or "", **chosen
        )
    elif request.routing_key is not None:
        raise Problem(422, "invalid-call", "routing_key goes with exchange")
    else:
        task = named.options(**chosen)
    # The body holds tagged JSON (as the envelope does): decoded here so that a tagged value
    # is re-tagged as itself, not escaped as a dict that merely holds the tag.
    return task.call(*codec.from_wire(request.args), **codec.from_wire(request.kwargs))


async def jobs_root(request: Request) -> Response:
    """/jobs: one route for both methods, so a 405 lists both in its Allow header."""
    return await (enqueue(request) if request.method == "POST" else list_jobs(request))


async def enqueue(request: Request) -> Response:
    """POST /jobs: store one job."""
    one = await body(request, EnqueueRequest)
    return await _store(request, [one])


async def enqueue_batch(request: Request) -> Response:
    """POST /jobs/batch: store many jobs in one atomic write."""
    batch = await body(request, BatchRequest)
    return await _store(request, batch.jobs)


async def _store(request: Request, wanted: list[EnqueueRequest]) -> Response:
    ctx = context(request)
    calls = [call_of(ctx.app, one) for one in wanted]
    handles = await ctx.app.enqueue_many_async(calls)
    if ctx.meter is not None:
        ctx.meter.enqueued(one.task for one in wanted)
    return _enqueued(handles)


async def publish(request: Request) -> Response:
    """POST /events: publish an event to the tasks subscribed to its topic."""
    event = await body(request, PublishRequest)
    app = context(request).app
    handles = await app.publish_async(
        event.topic,
        *codec.from_wire(event.args),
        event_id=event.event_id,
        **codec.from_wire(event.kwargs),
    )
    return _enqueued(handles)


def _enqueued(handles: list[JobHandle[Any]]) -> Response:
    jobs = [EnqueuedJob(handle.id, handle.duplicate) for handle in handles]
    return JSON(EnqueueResponse(jobs), status_code=201)


async def get_job(request: Request) -> Response:
    """GET /jobs/{id}: the job as stored now."""
    return JSON(job_view(await _one(request, "get")))


async def wait_job(request: Request) -> Response:
    """GET /jobs/{id}/wait?timeout=S: the job once it is done, or as it is at the timeout."""
    ctx = context(request)
    job_id = request.path_params["id"]
    timeout = query_seconds(request, "timeout", 30, ctx.config.max_wait)
    jobs = await ctx.app.call_broker(lambda b: b.wait_done([job_id], timeout))
    if not jobs:
        raise JobNotFound(job_id)
    return JSON(job_view(jobs[0]))


async def cancel_job(request: Request) -> Response:
    """POST /jobs/{id}/cancel: at once if waiting, by request if running."""
    return JSON(job_view(await _one(request, "cancel")))


async def requeue_job(request: Request) -> Response:
    """POST /jobs/{id}/requeue: a failed or cancelled job runs again with fresh budgets."""
    job = await _one(request, "get")
    if job.state not in _REQUEUEABLE:
        raise Problem(
            409, "not-requeueable", f"job {job.id} is {job.state}, not failed or cancelled"
        )
    return JSON(job_view(await _one(request, "requeue")))


async def _one(request: Request, verb: str) -> Job:
    job_id = request.path_params["id"]
    app = context(request).app
    jobs: list[Job] = await app.call_broker(lambda b: getattr(b, verb)([job_id]))
    if not jobs:
        raise JobNotFound(job_id)
    return jobs[0]


async def list_jobs(request: Request) -> Response:
    """GET /jobs?queue=&state=&task=&workflow=&idempotency_key=&limit=&cursor=: a page,
    newest first."""
    return await _page(request, tuple(_state(s) for s in request.query_params.getlist("state")))


async def dead_letters(request: Request) -> Response:
    """GET /dead-letters?queue=&task=&limit=&cursor=: failed jobs, newest first."""
    return await _page(request, (JobState.FAILED,))


async def _page(request: Request, states: tuple[JobState, ...]) -> Response:
    ctx = context(request)
    params = request.query_params
    query = JobQuery(
        # An empty value (`?queue=`) filters nothing, as an absent one.
        queue=params.get("queue") or None,
        states=states,
        task=params.get("task") or None,
        workflow=params.get("workflow") or None,
        idempotency_key=params.get("idempotency_key") or None,
        limit=query_int(request, "limit", 100, low=1, high=ctx.config.max_page),
        before_id=params.get("cursor") or None,
    )
    page = await ctx.app.call_broker(lambda b: b.list_jobs(query))
    views = [job_view(job, detail=False) for job in page.jobs]
    return JSON(JobPage(views, page.next_cursor))


def _state(raw: str) -> JobState:
    try:
        return _STATES[raw]
    except KeyError:
        known = ", ".join(_STATES)
        raise Problem(422, "invalid-query", f"unknown state {raw!r} (states: {known})") from None


ROUTES = [
    Route("/jobs", jobs_root, methods=["GET", "POST"]),
    Route("/jobs/batch", enqueue_batch, methods=["POST"]),
    Route("/events", publish, methods=["POST"]),
    Route("/jobs/{id}", get_job, methods=["GET"]),
    Route("/jobs/{id}/wait", wait_job, methods=["GET"]),
    Route("/jobs/{id}/cancel", cancel_job, methods=["POST"]),
    Route("/jobs/{id}/requeue", requeue_job, methods=["POST"]),
    Route("/dead-letters", dead_letters, methods=["GET"]),
]
