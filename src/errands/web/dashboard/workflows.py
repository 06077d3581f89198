"""The workflow page: a chain, group or chord as a graph of its jobs, each with its state, and
cancelling the whole workflow.

Its jobs come from list_jobs(JobQuery(workflow=...)), which every broker answers from an index
of job ids by workflow; the ids each job waits for are read from its envelope.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from errands import envelope
from errands.app import App
from errands.brokers.contract import Broker, JobQuery, Page
from errands.errors import MalformedMessage
from errands.job import Job
from errands.web.dashboard.forms import mutation
from errands.web.dashboard.rendering import back, dashboard, page

#: Jobs read per broker call.
PAGE: Final = 500
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
    """A workflow laid out in columns by depth."""

    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


async def show_workflow(request: Request) -> Response:
    """GET /workflows/{id}: the workflow's jobs as a graph, and as a table."""
    workflow_id = request.path_params["id"]
    members = await find_members(dashboard(request).app, workflow_id)
    if not members:
        return page(request, "missing.html", 404, title="No such workflow", what="workflow")
    graph = layout(members)
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
    members = await find_members(app, workflow_id)
    ids = [job.id for job, _ in members if not job.state.terminal]
    if ids:
        await app.call_broker(lambda b: b.cancel(ids))
    return back(request, f"/workflows/{workflow_id}")


async def find_members(app: App, workflow_id: str) -> list[Member]:
    """The jobs of the workflow, oldest first, with the ids each waits for."""
    found: list[Member] = []
    cursor: str | None = None
    while True:
        query = JobQuery(workflow=workflow_id, limit=PAGE, before_id=cursor)
        batch = await app.call_broker(functools.partial(_page, query=query))
        found += [(job, _parents(job)) for job in batch.jobs]
        cursor = batch.next_cursor
        if cursor is None:
            return found[::-1]


async def _page(broker: Broker, query: JobQuery) -> Page:
    return await broker.list_jobs(query)


def _parents(job: Job) -> tuple[str, ...]:
    """The ids `job` waits for, from its envelope; none if it cannot be decoded."""
    try:
        env = envelope.decode(bytes(job.payload))
    except MalformedMessage:
        return ()
    return tuple(env.depends_on or ())


def layout(members: list[Member]) -> Graph:
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
    return Graph(nodes, edges, width, height)


ROUTES: Final = [
    Route("/workflows/{id}", show_workflow, methods=["GET"]),
    Route("/workflows/{id}/cancel", cancel_workflow, methods=["POST"]),
]
