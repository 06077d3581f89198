"""serve: run the HTTP API of an App on uvicorn, on one event loop shared with the App's broker.

The App's portal adopts the server's loop, so a request reaches the broker without hopping
threads. An API bound beyond the loopback interface must have bearer tokens: it refuses to
start without them rather than serve every job to the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

import uvicorn

from errands.app import App
from errands.cli.logs import flush_logs_every
from errands.loops import new_event_loop
from errands.web.application import create_app
from errands.web.config import WebConfig, is_loopback, tokens_from

log = logging.getLogger("errands.web")
#: Seconds a stopping server lets requests in flight finish before closing them.
STOP_GRACE = 3


class Unprotected(ValueError):
    """The API would listen beyond this machine with no token to check."""


def serve(
    app: App,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    tokens: Sequence[str] = (),
    config: WebConfig | None = None,
    log_level: str = "info",
) -> None:
    """Serve the API of `app` on host:port until SIGINT or SIGTERM.

    `tokens` adds to ERRANDS_API_TOKENS; Unprotected if there are none and `host` is not a
    loopback address (127.0.0.1, ::1, localhost).
    """
    known = tokens_from(tokens)
    if not known and not is_loopback(host):
        raise Unprotected(
            f"refusing to serve on {host} without a token: give --token or ERRANDS_API_TOKENS, "
            "or bind 127.0.0.1"
        )
    web = create_app(app, tokens=known, config=config)
    server = uvicorn.Server(
        uvicorn.Config(
            web,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="on",
            # Long polls would hold a stop for up to max_wait; their clients poll again.
            timeout_graceful_shutdown=STOP_GRACE,
        )
    )
    loop = new_event_loop(app.settings.loop)
    try:
        app.portal.adopt(loop)
    except RuntimeError:  # the module already used the App from its own thread: keep that
        log.info("the App's portal runs its own loop; the API reaches it across threads")
    log.info("errands API of %s on http://%s:%d/api/v1", app.broker.location, host, port)
    with _signals_end_the_server():
        try:
            loop.run_until_complete(_serving(server))
            loop.run_until_complete(app.close_async())
        finally:
            loop.close()


async def _serving(server: uvicorn.Server) -> None:
    flushing = asyncio.ensure_future(flush_logs_every())  # INFO lines are written in batches
    try:
        await server.serve()
    finally:
        flushing.cancel()


@contextlib.contextmanager
def _signals_end_the_server() -> Iterator[None]:
    """uvicorn raises the signal that stopped it again once it has shut down, to end the
    process; handled here by returning, so the App closes its broker and logs are flushed."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread gets signals: uvicorn leaves them alone too
        return
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A stop signal uvicorn has already acted on."""
