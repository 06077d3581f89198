"""Guards in front of every route: bearer tokens (or loopback clients only), the dashboard's
login cookie on its own pages, and a body cap.

Pure ASGI middleware, so a refused request costs no routing and an oversized body is cut off
as it streams in, not after it was buffered whole.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from urllib.parse import quote

from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from errands.web.config import is_loopback
from errands.web.dashboard.sessions import Sessions
from errands.web.problems import problem_response

#: Paths served to anyone: a load balancer's health check carries no token.
OPEN_PATHS = frozenset({"/api/v1/health"})


class BearerAuth:
    """Requires `Authorization: Bearer <one of tokens>`; with no tokens, a loopback client.

    With `sessions` (the dashboard is on), a dashboard page also takes a login cookie in place
    of the header, and a browser without either is sent to the login form; the API never
    takes the cookie.
    """

    def __init__(
        self, app: ASGIApp, tokens: Sequence[str], sessions: Sessions | None = None
    ) -> None:
        self.app, self.sessions = app, sessions
        self.tokens = [token.encode() for token in tokens]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _path(scope)
        if path in OPEN_PATHS or self._open_page(path):
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None or self._logged_in(scope, path, refusal[0]):
            await self.app(scope, receive, send)
            return
        status, detail = refusal
        if status == 401 and self._page(path):
            target = f"{scope.get('root_path', '')}/login?next={quote(path)}"
            await RedirectResponse(target, 303)(scope, receive, send)
            return
        await problem_response(status, "unauthorized" if status == 401 else "forbidden", detail)(
            scope, receive, send
        )

    def _open_page(self, path: str) -> bool:
        return self.sessions is not None and self.sessions.is_open(path)

    def _page(self, path: str) -> bool:
        return self.sessions is not None and self.sessions.serves(path)

    def _logged_in(self, scope: Scope, path: str, status: int) -> bool:
        # Only a refusal for want of a token can be lifted by a login, and only on a page.
        return (
            status == 401
            and self._page(path)
            and self.sessions is not None
            and (self.sessions.admits(scope))
        )

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        if not self.tokens:
            client = scope.get("client")
            if client is None or is_loopback(client[0]):
                return None
            return 403, "this API has no tokens, so it serves clients on this machine only"
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return 401, "send 'Authorization: Bearer <token>'"
        # Compared in constant time against every token, so timing tells nothing.
        if not any([hmac.compare_digest(token.strip(), known) for known in self.tokens]):
            return 401, "the bearer token is not one of this API's"
        return None


class BodyLimit:
    """Refuses request bodies over `limit` bytes with 413, by Content-Length or as they stream."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._too_large(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is over {self.limit} bytes"
        await problem_response(413, "payload-too-large", detail)(scope, receive, send)


class _TooLarge(Exception):
    """Raised inside the app's receive to stop reading a body that ran over the cap."""


def _path(scope: Scope) -> str:
    root = scope.get("root_path", "")
    path: str = scope["path"]
    return path[len(root) :] if root and path.startswith(root) else path
