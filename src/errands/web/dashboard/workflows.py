"""The workflow page: a chain, group or chord as a graph of its jobs, each with its state, and
cancelling the whole workflow.

Brokers keep no index by workflow: a workflow's id is made just before its jobs' ids, in the
same process, in one go (plan.py builds every spec before the one write that stores them), and
ids are time-ordered: so its members are found by walking ids down from a bound
after the workflow's id to the id itself, a page at a time (keyset on the primary key),
reading at most SCAN_LIMIT jobs and decoding only payloads that hold the workflow's id.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from errands import envelope
from errands.app import App
from errands.brokers.contract import Broker, JobQuery
from errands.errors import MalformedMessage
from errands.job import Job
from errands.web.dashboard.forms import mutation
from errands.web.dashboard.rendering import back, dashboard, page

#: Members are looked for among the jobs made within the first of these spans after the
#: workflow's id that ends with QUIET_MS free of members: plan.py builds a spec in tens of
#: microseconds, so a workflow's ids come in one burst, and the last span covers tens of
#: thousands of members. Small spans first: on a busy broker a span holds other jobs too.
WINDOWS: Final = (timedelta(milliseconds=50), timedelta(milliseconds=500), timedelta(seconds=2))
QUIET_MS: Final = 25
#: Jobs read at most to find them, and per broker call.
SCAN_LIMIT: Final = 10_000
SCAN_PAGE: Final = 500
#: A member job and the ids of the jobs it waits for.
Member = tuple[Job, tuple[str, ...]]
#: Size of a node of the graph and the gaps between them, in SVG user units.
NODE_W, NODE_H, GAP_X, GAP_Y = 200, 46, 60, 16


@dataclass(frozen=True, slots=True)
class Node:
    """A member job placed on the graph; x, y is its top left corner."""

    job: Job
    depends_on: tuple[str, ...]
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Edge:
    """A line from the right side of a dependency to the left side of the job waiting for it."""

    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True, slots=True)
class Graph:
    """A workflow laid out in columns by depth; `complete` is False if the scan was cut short."""

    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int
    complete: bool


async def show_workflow(request: Request) -> Response:
    """GET /workflows/{id}: the workflow's jobs as a graph, and as a table."""
    workflow_id = request.path_params["id"]
    members, complete = await find_members(dashboard(request).app, workflow_id)
    if not members:
        return page(request, "missing.html", 404, title="No such workflow", what="workflow")
    graph = layout(members, complete)
    return page(
        request,
        "workflow.html",
        title=f"Workflow {workflow_id}",
        graph=graph,
        workflow_id=workflow_id,
        NODE_W=NODE_W,
        NODE_H=NODE_H,
    )


@mutation
async def cancel_workflow(request: Request) -> Response:
    """POST /workflows/{id}/cancel: every job of the workflow not ended yet is cancelled."""
    workflow_id = request.path_params["id"]
    app = dashboard(request).app
    members, _ = await find_members(app, workflow_id)
    ids = [job.id for job, _ in members if not job.state.terminal]
    if ids:
        await app.call_broker(lambda b: b.cancel(ids))
    return back(request, f"/workflows/{workflow_id}")


async def find_members(app: App, workflow_id: str) -> tuple[list[Member], bool]:
    """The jobs of the workflow (oldest first) with the ids each waits for, and whether the
    scan read every job it meant to."""
    try:
        made = id_ms(workflow_id)
    except ValueError:
        return [], True
    found: list[Member] = []
    complete = True
    for window in WINDOWS:
        top = made + window // timedelta(milliseconds=1)
        scan = functools.partial(_scan, workflow_id=workflow_id, start=id_bound(top))
        found, complete = await app.call_broker(scan)
        # A quiet stretch after the newest member: the burst that made the ids had ended.
        if not complete or (found and id_ms(found[-1][0].id) + QUIET_MS <= top):
            break
    return found, complete


async def _scan(broker: Broker, workflow_id: str, start: str) -> tuple[list[Member], bool]:
    """Members among the ids from `start` down to the workflow's, at most SCAN_LIMIT jobs."""
    found: list[Member] = []
    cursor: str | None = start
    for _ in range(SCAN_LIMIT // SCAN_PAGE):
        batch = await broker.list_jobs(JobQuery(limit=SCAN_PAGE, before_id=cursor))
        for job in batch.jobs:
            if job.id < workflow_id:
                return found[::-1], True
            parents = _parents_if_member(job, workflow_id)
            if parents is not None:
                found.append((job, parents))
        cursor = batch.next_cursor
        if cursor is None:
            return found[::-1], True
    return found[::-1], False


def _parents_if_member(job: Job, workflow_id: str) -> tuple[str, ...] | None:
    if workflow_id.encode() not in job.payload:  # most jobs in the window: no decoding
        return None
    try:
        env = envelope.decode(bytes(job.payload))
    except MalformedMessage:
        return None
    if (env.workflow or {}).get("id") != workflow_id:
        return None
    return tuple(env.depends_on or ())


def id_ms(job_id: str) -> int:
    """The millisecond a job id was made (its first 48 bits); ValueError for another shape."""
    digits = job_id.replace("-", "")
    if len(digits) != 32:
        raise ValueError(f"not a job id: {job_id!r}")
    return int(digits[:12], 16)


def id_bound(ms: int) -> str:
    """An id above every id made at or before millisecond `ms`."""
    hexed = f"{ms + 1:012x}" + "0" * 20
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def layout(members: list[Member], complete: bool = True) -> Graph:
    """Members in columns by depth (a job sits right of everything it waits for), in the
    order they were made within a column."""
    depth: dict[str, int] = {}
    for job, parents in members:  # oldest first: a job's dependencies come before it
        depth[job.id] = 1 + max((depth.get(p, -1) for p in parents), default=-1)
    rows: dict[int, int] = {}
    nodes: list[Node] = []
    for job, parents in members:
        column = depth[job.id]
        row = rows.get(column, 0)
        rows[column] = row + 1
        nodes.append(Node(job, parents, column * (NODE_W + GAP_X), row * (NODE_H + GAP_Y)))
    placed = {node.job.id: node for node in nodes}
    edges = [
        Edge(placed[p].x + NODE_W, placed[p].y + NODE_H // 2, node.x, node.y + NODE_H // 2)
        for node in nodes
        for p in node.depends_on
        if p in placed
    ]
    width = (max(depth.values(), default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = max(rows.values(), default=1) * (NODE_H + GAP_Y) - GAP_Y
    return Graph(nodes, edges, width, height, complete)


ROUTES: Final = [
    Route("/workflows/{id}", show_workflow, methods=["GET"]),
    Route("/workflows/{id}/cancel", cancel_workflow, methods=["POST"]),
]
