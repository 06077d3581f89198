"""The overview page: queues with their counts, paused flags and oldest waiting job, live
throughput and failure rate (server-sent events), and pausing and resuming queues."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Final

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from errands.brokers.contract import Counts
from errands.web.dashboard.forms import mutation
from errands.web.dashboard.live import HEIGHT, STATES, WIDTH, Tracker, cell_id, queue_rows
from errands.web.dashboard.rendering import SECURITY_HEADERS, back, dashboard, page

#: Seconds between two readings pushed to a browser: one counts() per connection per tick.
TICK: Final = 1.0
_encode = msgspec.json.Encoder().encode


async def overview(request: Request) -> Response:
    """GET /: every queue and the totals; the page then follows /events/overview."""
    app = dashboard(request).app
    counts = await app.call_broker(lambda b: b.counts())
    workers = await app.call_broker(lambda b: b.workers())
    snapshot = Tracker().snapshot(counts)
    return page(
        request,
        "overview.html",
        title="Overview",
        queues=queue_rows(counts),
        states=[state.value for state in STATES],
        cells=snapshot["cells"],
        cell_id=cell_id,
        workers=len(workers),
        width=WIDTH,
        height=HEIGHT,
    )


async def overview_events(request: Request) -> Response:
    """GET /events/overview: a `counts` event every TICK with the overview's figures."""
    app = dashboard(request).app

    async def stream() -> AsyncIterator[bytes]:
        tracker = Tracker()
        while True:
            counts: Counts = await app.call_broker(lambda b: b.counts())
            tracker.add(counts, time.monotonic())
            yield b"event: counts\ndata: " + _encode(tracker.snapshot(counts)) + b"\n\n"
            await asyncio.sleep(TICK)

    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}  # no proxy buffering
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@mutation
async def pause_queue(request: Request) -> Response:
    """POST /queues/{name}/pause: claims skip the queue until it is resumed."""
    name = request.path_params["name"]
    await dashboard(request).app.call_broker(lambda b: b.pause([name]))
    return back(request, "/")


@mutation
async def resume_queue(request: Request) -> Response:
    """POST /queues/{name}/resume: undo pause."""
    name = request.path_params["name"]
    await dashboard(request).app.call_broker(lambda b: b.resume([name]))
    return back(request, "/")


ROUTES: Final = [
    Route("/", overview, methods=["GET"]),
    Route("/events/overview", overview_events, methods=["GET"]),
    Route("/queues/{name}/pause", pause_queue, methods=["POST"]),
    Route("/queues/{name}/resume", resume_queue, methods=["POST"]),
]
