"""Pages about what runs the jobs: schedules (next fire times in their zone and in UTC, skipped
slots, pause and resume) and workers (their heartbeats, and memory where it can be read)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from errands.brokers.contract import WorkerInfo
from errands.errors import ScheduleNotFound
from errands.web.dashboard.forms import mutation
from errands.web.dashboard.rendering import back, dashboard, page

#: Fire times shown per schedule.
UPCOMING: Final = 3


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """A worker's heartbeat and, for a worker on this host, its resident memory in bytes."""

    info: WorkerInfo
    rss: int | None


async def schedules(request: Request) -> Response:
    """GET /schedules: every schedule with its next fire times and skipped slots."""
    now = datetime.now(UTC)
    infos = await dashboard(request).app.schedules.list_async()
    upcoming = {info.name: info.next_times(UPCOMING, after=now) for info in infos}
    return page(request, "schedules.html", title="Schedules", infos=infos, upcoming=upcoming)


@mutation
async def pause_or_resume_schedule(request: Request) -> Response:
    """POST /schedules/{name}/pause: the schedule fires no more until resumed; POST
    /schedules/{name}/resume: it fires again from now on."""
    schedules = dashboard(request).app.schedules
    pausing = request.url.path.endswith("/pause")
    try:
        await (schedules.pause_async if pausing else schedules.resume_async)(
            request.path_params["name"]
        )
    except ScheduleNotFound:
        return page(request, "missing.html", 404, title="No such schedule", what="schedule")
    return back(request, "/schedules")


async def workers(request: Request) -> Response:
    """GET /workers: workers whose heartbeat is recent."""
    found = await dashboard(request).app.call_broker(lambda b: b.workers())
    here = socket.gethostname()
    rows = [
        WorkerRow(info, resident_bytes(info.pid) if info.hostname == here else None)
        for info in sorted(found, key=lambda worker: worker.id)
    ]
    return page(request, "workers.html", title="Workers", rows=rows)


def resident_bytes(pid: int) -> int | None:
    """The resident memory of process `pid` on this host (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # another OS, or the process is gone
        return None


ROUTES: Final = [
    Route("/schedules", schedules, methods=["GET"]),
    Route("/schedules/{name}/pause", pause_or_resume_schedule, methods=["POST"]),
    Route("/schedules/{name}/resume", pause_or_resume_schedule, methods=["POST"]),
    Route("/workers", workers, methods=["GET"]),
]
