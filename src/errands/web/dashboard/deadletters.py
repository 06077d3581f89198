"""The dead letters page: failed jobs a page at a time, with retry one, retry all and purge."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from errands.app import App
from errands.brokers.contract import Broker, JobQuery
from errands.job import JobState
from errands.web.dashboard.forms import field, mutation
from errands.web.dashboard.jobs import PAGE_SIZE, job_page
from errands.web.dashboard.rendering import back, dashboard

#: Dead letters requeued per broker call by "retry all": a page, never the whole set at once.
RETRY_BATCH: Final = 500
_FAILED: Final = (JobState.FAILED,)


async def dead_letters(request: Request) -> Response:
    """GET /dead-letters?queue=&cursor=: failed jobs, newest first."""
    params = request.query_params
    query = JobQuery(
        queue=params.get("queue") or None,
        states=_FAILED,
        limit=PAGE_SIZE,
        before_id=params.get("cursor") or None,
    )
    return await job_page(request, "dead_letters.html", query, title="Dead letters")


@mutation
async def retry_one(request: Request) -> Response:
    """POST /dead-letters/{id}/retry: the job runs again with fresh budgets."""
    job_id = request.path_params["id"]
    await dashboard(request).app.call_broker(lambda b: b.requeue([job_id]))
    return back(request, await _return_to(request))


@mutation
async def retry_all(request: Request) -> Response:
    """POST /dead-letters/retry: every dead letter (of the form's queue, if one) runs again."""
    queue = await field(request, "queue") or None
    await requeue_all(dashboard(request).app, queue)
    return back(request, await _return_to(request))


@mutation
async def purge(request: Request) -> Response:
    """POST /dead-letters/purge: delete the dead letters (of the form's queue, if one)."""
    app = dashboard(request).app
    queue = await field(request, "queue")
    if queue:
        queues = [queue]
    else:
        counts = await app.call_broker(lambda b: b.counts())
        queues = [name for name, states in counts.by_queue.items() if states.get(JobState.FAILED)]

    async def purge_each(broker: Broker) -> None:
        for name in queues:
            await broker.purge(name, _FAILED)

    await app.call_broker(purge_each)
    return back(request, "/dead-letters")


async def requeue_all(app: App, queue: str | None) -> int:
    """Requeue every failed job of `queue` (all queues when None), a page per broker call;
    returns how many. A requeued job leaves the failed state, so each page starts from the
    newest."""

    async def run(broker: Broker) -> int:
        total = 0
        query = JobQuery(queue=queue, states=_FAILED, limit=RETRY_BATCH)
        while found := (await broker.list_jobs(query)).jobs:
            after = await broker.requeue([job.id for job in found])
            moved = sum(job.state != JobState.FAILED for job in after)
            if not moved:  # nothing left the state (a concurrent purge): stop, never spin
                break
            total += moved
        return total

    return await app.call_broker(run)


async def _return_to(request: Request) -> str:
    """The form's `next` path when it is one of this site's, else the dead letters."""
    wanted = await field(request, "next")
    return wanted if wanted.startswith("/") and not wanted.startswith("//") else "/dead-letters"


ROUTES: Final = [
    Route("/dead-letters", dead_letters, methods=["GET"]),
    Route("/dead-letters/retry", retry_all, methods=["POST"]),
    Route("/dead-letters/purge", purge, methods=["POST"]),
    Route("/dead-letters/{id}/retry", retry_one, methods=["POST"]),
]
