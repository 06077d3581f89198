"""Forms: every POST of the dashboard goes through `mutation`, which refuses it without this
browser's CSRF token (the X-CSRF-Token header htmx sends, or a plain form's `csrf` field)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from errands.web.dashboard.rendering import dashboard
from errands.web.dashboard.sessions import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER
from errands.web.problems import problem_response

Handler = Callable[[Request], Awaitable[Response]]


def mutation(handler: Handler) -> Handler:
    """`handler`, run only when the request carries the CSRF token of its browser's cookie."""

    @functools.wraps(handler)
    async def checked(request: Request) -> Response:
        token = request.headers.get(CSRF_HEADER)
        if token is None:
            field = (await request.form()).get(CSRF_FIELD)
            token = field if isinstance(field, str) else None
        if not dashboard(request).sessions.csrf_ok(request.cookies.get(CSRF_COOKIE), token):
            detail = "the CSRF token is missing or stale: reload the page and try again"
            return problem_response(403, "csrf", detail)
        return await handler(request)

    return checked


async def field(request: Request, name: str) -> str:
    """A form field's text ("" when absent or a file)."""
    value = (await request.form()).get(name)
    return value if isinstance(value, str) else ""
