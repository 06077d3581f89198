"""The httpx client push targets share: one per event loop a worker runs on, made at the first
push and closed when the last worker on that loop stops.

A middleware in `app.middleware`, so the worker's start and stop hooks tell it which loops
serve jobs; a push made outside any worker (the task called inline) uses a client of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx

import errands
from errands.worker.middleware import Middleware

if TYPE_CHECKING:
    from errands.app import App
    from errands.worker.worker import Worker

#: Keep-alive connections kept per client; a worker runs at most its concurrency at once.
KEEPALIVE = 32


class PushClients(Middleware):
    """The shared AsyncClient of each event loop that runs a worker of the App."""

    def __init__(self) -> None:
        self._workers: dict[asyncio.AbstractEventLoop, int] = {}
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        #: Closings under way, held so the loop does not drop them half done.
        self._closing: set[asyncio.Task[None]] = set()

    @classmethod
    def of(cls, app: App) -> PushClients:
        """The App's instance, added to its middleware on first use."""
        for middleware in app.middleware:
            if isinstance(middleware, cls):
                return middleware
        made = cls()
        app.middleware.append(made)
        return made

    def on_worker_start(self, worker: Worker) -> None:
        """Count a worker on this loop: pushes made here share a client from now on."""
        loop = asyncio.get_running_loop()
        self._workers[loop] = self._workers.get(loop, 0) + 1

    def on_worker_stop(self, worker: Worker) -> None:
        """Close this loop's client once its last worker stops (the hook cannot await, so
        the closing runs as a task of the loop)."""
        loop = asyncio.get_running_loop()
        left = self._workers.get(loop, 0) - 1
        if left > 0:
            self._workers[loop] = left
            return
        self._workers.pop(loop, None)
        client = self._clients.pop(loop, None)
        if client is not None:
            closing = loop.create_task(client.aclose())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[httpx.AsyncClient]:
        """The client for a push made now: this loop's shared one inside a worker, else one
        made for this push and closed after it."""
        loop = asyncio.get_running_loop()
        if loop not in self._workers:
            async with new_client() as own:
                yield own
            return
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = self._clients[loop] = new_client()
        yield client


def new_client() -> httpx.AsyncClient:
    """A client for pushes: no redirects (a redirect is a rejection) and no timeouts of its own
    (each push runs under its target's deadline)."""
    return httpx.AsyncClient(
        follow_redirects=False,
        timeout=httpx.Timeout(None),
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=KEEPALIVE),
        headers={"User-Agent": f"errands/{errands.__version__}"},
    )
