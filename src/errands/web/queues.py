"""Routes about the system around the jobs: queues with their counts, pausing, schedules and
workers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from errands.web.context import context
from errands.web.views import JSON, queue_view, queue_views, schedule_view, worker_view


async def list_queues(request: Request) -> Response:
    """GET /queues: every queue with its jobs by state and whether it is paused."""
    counts = await context(request).app.call_broker(lambda b: b.counts())
    return JSON(queue_views(counts))


async def get_queue(request: Request) -> Response:
    """GET /queues/{name}: one queue (one never enqueued to shows no jobs)."""
    name = request.path_params["name"]
    counts = await context(request).app.call_broker(lambda b: b.counts([name]))
    return JSON(queue_view(name, counts))


async def pause_queue(request: Request) -> Response:
    """POST /queues/{name}/pause: claims skip the queue until it is resumed."""
    name = request.path_params["name"]
    await context(request).app.call_broker(lambda b: b.pause([name]))
    return await get_queue(request)


async def resume_queue(request: Request) -> Response:
    """POST /queues/{name}/resume: undo pause."""
    name = request.path_params["name"]
    await context(request).app.call_broker(lambda b: b.resume([name]))
    return await get_queue(request)


async def list_schedules(request: Request) -> Response:
    """GET /schedules: the stored schedules, by name."""
    records = await context(request).app.call_broker(lambda b: b.schedules())
    return JSON([schedule_view(record) for record in records])


async def list_workers(request: Request) -> Response:
    """GET /workers: workers whose heartbeat is recent."""
    workers = await context(request).app.call_broker(lambda b: b.workers())
    return JSON([worker_view(info) for info in sorted(workers, key=lambda w: w.id)])


ROUTES = [
    Route("/queues", list_queues, methods=["GET"]),
    Route("/queues/{name}", get_queue, methods=["GET"]),
    Route("/queues/{name}/pause", pause_queue, methods=["POST"]),
    Route("/queues/{name}/resume", resume_queue, methods=["POST"]),
    Route("/schedules", list_schedules, methods=["GET"]),
    Route("/workers", list_workers, methods=["GET"]),
]
