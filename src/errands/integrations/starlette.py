"""Starlette and FastAPI: a lifespan that opens the errands App at startup and closes it at
shutdown, and `get_app` to reach the App from a request (a FastAPI dependency).

Enqueueing is the App's own `await task.enqueue_async(...)`; serving the HTTP API is
`errands.web.create_app`, which can be mounted under a path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from starlette.requests import HTTPConnection

from errands.app import App

AppT = TypeVar("AppT")
#: A Starlette lifespan: called with the ASGI app, it gives the context the server runs in.
Lifespan = Callable[[AppT], AbstractAsyncContextManager[Mapping[str, Any] | None]]

#: The lifespan state key (`request.state.errands`) that holds the App.
STATE_KEY = "errands"


def errands_lifespan(
    app: App, lifespan: Lifespan[AppT] | None = None
) -> Callable[[AppT], AbstractAsyncContextManager[dict[str, Any]]]:
    """A lifespan for `Starlette(lifespan=...)` or `FastAPI(lifespan=...)` that opens `app`
    (a broker that is down fails the startup) and closes it at shutdown.

    Your own `lifespan` runs inside it, so it may enqueue at startup and shutdown; the state
    it yields is kept, with `errands` (the App) added for `get_app`.
    """

    @contextlib.asynccontextmanager
    async def run(asgi: AppT) -> AsyncIterator[dict[str, Any]]:
        await app.portal.run(app.open_async)
        try:
            async with contextlib.AsyncExitStack() as stack:
                state = await stack.enter_async_context(lifespan(asgi)) if lifespan else None
                yield {**(state or {}), STATE_KEY: app}
        finally:
            # Off the server's loop: closing stops the App's portal thread and waits for it.
            await asyncio.to_thread(app.close)

    return run


def get_app(connection: HTTPConnection) -> App:
    """The App of `errands_lifespan`, from a request or websocket: in FastAPI, a dependency
    (`shop: Annotated[App, Depends(get_app)]`); in Starlette, `get_app(request)`."""
    app = getattr(connection.state, STATE_KEY, None)
    if not isinstance(app, App):
        raise RuntimeError(
            "no errands App in this request's state: pass lifespan=errands_lifespan(app) to "
            "Starlette or FastAPI (and run the server with lifespan on)"
        )
    return app
