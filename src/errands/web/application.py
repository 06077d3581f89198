"""create_app: the HTTP API of one errands App as a Starlette (ASGI) application, to run with
`errands serve` or to mount inside your own ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from errands.app import App
from errands.web import jobs, pull, queues
from errands.web.config import WebConfig, tokens_from
from errands.web.context import Context
from errands.web.dashboard.rendering import Dashboard
from errands.web.dashboard.routes import dashboard_routes, dashboard_state
from errands.web.guards import BearerAuth, BodyLimit
from errands.web.openapi import PREFIX, openapi
from errands.web.problems import handlers
from errands.web.schemas import Health
from errands.web.views import JSON
from errands.worker.maintenance import Maintenance

if TYPE_CHECKING:
    from errands.web.metrics import Meter


def create_app(
    app: App,
    *,
    tokens: Sequence[str] | None = None,
    config: WebConfig | None = None,
    metrics: bool = True,
    dashboard: bool = True,
) -> Starlette:
    """The HTTP API of `app`, under /api/v1 (and /metrics), and its dashboard at /.

    `tokens`: the bearer tokens a client must send; None reads ERRANDS_API_TOKENS (comma-
    separated), and no token at all serves loopback clients only. `config` sets the limits
    (body size, waits, leases), whether the rescuer runs beside the API and what the dashboard
    redacts; `metrics` adds GET /metrics when prometheus-client is installed; `dashboard`
    adds the web pages (docs/dashboard.md), where a browser logs in with one of the tokens.
    """
    chosen = config or WebConfig()
    if tokens is not None:
        chosen = replace(chosen, tokens=tuple(tokens))
    elif not chosen.tokens:
        chosen = replace(chosen, tokens=tokens_from())
    meter = _meter() if metrics else None
    routes: list[BaseRoute] = [
        Mount(
            PREFIX,
            routes=[
                Route("/health", health, methods=["GET"]),
                Route("/openapi.json", openapi, methods=["GET"]),
                *jobs.ROUTES,
                *queues.ROUTES,
                *pull.ROUTES,
            ],
        )
    ]
    if meter is not None:
        from errands.web.metrics import metrics as metrics_route

        routes.append(Route("/metrics", metrics_route, methods=["GET"]))
    pages = _dashboard(app, chosen) if dashboard else None
    if pages is not None:
        routes += pages[0]
    web = Starlette(
        routes=routes,
        middleware=[
            # Outermost first: a stranger learns nothing, not even the body cap.
            Middleware(
                BearerAuth, tokens=chosen.tokens, sessions=pages[1].sessions if pages else None
            ),
            Middleware(BodyLimit, limit=chosen.max_body_bytes),
        ],
        exception_handlers=handlers(),
        lifespan=_lifespan(app, chosen),
    )
    web.state.errands = Context(app, chosen, meter)
    if pages is not None:
        web.state.dashboard = pages[1]
    return web


def _dashboard(app: App, config: WebConfig) -> tuple[list[BaseRoute], Dashboard]:
    return dashboard_routes(), dashboard_state(app, config)


async def health(request: Request) -> Response:
    """GET /health: the API answers; no token needed, for load balancers."""
    return JSON(Health("ok"))


def _meter() -> Meter | None:
    try:
        from errands.web.metrics import Meter
    except ImportError:  # prometheus-client is optional: no /metrics without it
        return None
    return Meter()


def _lifespan(
    app: App, config: WebConfig
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(web: Starlette) -> AsyncIterator[None]:
        await app.portal.run(app.open_async)  # a broker that is down fails the start
        if not config.maintenance:
            yield
            return
        stopping = asyncio.Event()
        running = asyncio.ensure_future(app.portal.run(_maintain, app, stopping))
        try:
            yield
        finally:
            app.portal.loop.call_soon_threadsafe(stopping.set)
            await running

    return lifespan


async def _maintain(app: App, stopping: asyncio.Event) -> None:
    """The rescuer and promoter, on the App's portal loop where its broker lives."""
    broker = await app.open_async()
    await Maintenance(broker, app.clock, app.settings, worker_id="").run(stopping)
