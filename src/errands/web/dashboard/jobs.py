"""Job pages: jobs by queue and state a page at a time (keyset, newest first), search by id or
task, one job in full (arguments redacted, result, attempts, timeline, progress), and cancel
and requeue."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from errands.brokers.contract import JobQuery, Page
from errands.job import Job, JobState
from errands.web.dashboard.forms import mutation
from errands.web.dashboard.jobview import JobDetail, detail
from errands.web.dashboard.rendering import back, dashboard, page, root

#: Jobs a list page shows.
PAGE_SIZE: Final = 50
_ID: Final = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_STATES: Final = {state.value: state for state in JobState}


async def list_jobs(request: Request) -> Response:
    """GET /jobs?queue=&state=&task=&q=&cursor=: a page of jobs, newest first; `q` is a job id
    (its page), a task name, or else an idempotency key."""
    params = request.query_params
    search = (params.get("q") or "").strip()
    if _ID.match(search.lower()):
        return RedirectResponse(f"{root(request)}/jobs/{search.lower()}", 303)
    state = params.get("state") or ""
    query = JobQuery(
        queue=params.get("queue") or None,
        states=(_STATES[state],) if state in _STATES else (),
        task=search or params.get("task") or None,
        limit=PAGE_SIZE,
        before_id=params.get("cursor") or None,
    )
    app = dashboard(request).app
    found = await app.call_broker(lambda b: b.list_jobs(query))
    if search and not found.jobs:
        # No task of that name has jobs here: the text may be an idempotency key. A later
        # page of a key's jobs takes this path again, since the task still has none.
        query = replace(query, task=params.get("task") or None, idempotency_key=search)
        found = await app.call_broker(lambda b: b.list_jobs(query))
    return await job_page(
        request, "jobs.html", query, title="Jobs", search=search, state=state, found=found
    )


async def job_page(
    request: Request, template: str, query: JobQuery, found: Page | None = None, **values: Any
) -> Response:
    """`template` with one page of `query` (`found`, if already read) and the counts its
    filters offer."""
    app = dashboard(request).app
    if found is None:
        found = await app.call_broker(lambda b: b.list_jobs(query))
    counts = await app.call_broker(lambda b: b.counts())
    queues = sorted(set(counts.by_queue) | set(counts.paused))
    return page(
        request,
        template,
        jobs=found.jobs,
        next_cursor=found.next_cursor,
        query=query,
        queues=queues,
        states=list(_STATES),
        **values,
    )


async def show_job(request: Request) -> Response:
    """GET /jobs/{id}: one job in full."""
    job = await _get(request)
    if job is None:
        return page(request, "missing.html", 404, title="No such job", what="job")
    shown: JobDetail = detail(job, dashboard(request).redactor)
    return page(request, "job.html", title=f"Job {job.id}", job=job, shown=shown)


@mutation
async def cancel_job(request: Request) -> Response:
    """POST /jobs/{id}/cancel: at once if waiting, by request if running."""
    job_id = request.path_params["id"]
    await dashboard(request).app.call_broker(lambda b: b.cancel([job_id]))
    return back(request, f"/jobs/{job_id}")


@mutation
async def requeue_job(request: Request) -> Response:
    """POST /jobs/{id}/requeue: a failed or cancelled job runs again (others are unchanged)."""
    job_id = request.path_params["id"]
    await dashboard(request).app.call_broker(lambda b: b.requeue([job_id]))
    return back(request, f"/jobs/{job_id}")


async def _get(request: Request) -> Job | None:
    job_id = request.path_params["id"]
    jobs = await dashboard(request).app.call_broker(lambda b: b.get([job_id]))
    return jobs[0] if jobs else None


ROUTES: Final = [
    Route("/jobs", list_jobs, methods=["GET"]),
    Route("/jobs/{id}", show_job, methods=["GET"]),
    Route("/jobs/{id}/cancel", cancel_job, methods=["POST"]),
    Route("/jobs/{id}/requeue", requeue_job, methods=["POST"]),
]
