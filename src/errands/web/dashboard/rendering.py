"""Rendering: the dashboard's Jinja2 templates turned into responses, with what every page needs
(the CSRF token, the mount path, security headers) and the filters templates format values with.

Routes pass values; they never build HTML themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import jinja2
import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from errands.app import App
from errands.web.config import WebConfig
from errands.web.dashboard.redaction import Redactor
from errands.web.dashboard.sessions import CSRF_COOKIE, SESSION_COOKIE, Sessions

#: Pages load only this server's scripts, styles and images, and are never framed.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_pretty = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Dashboard:
    """What every dashboard route reaches through `request.app.state.dashboard`."""

    app: App
    config: WebConfig
    sessions: Sessions
    redactor: Redactor


def dashboard(request: Request) -> Dashboard:
    """The Dashboard serving `request`."""
    found: Dashboard = request.app.state.dashboard
    return found


def root(request: Request) -> str:
    """The path the app is mounted at ("" at the top), to prefix every link with."""
    mounted: str = request.scope.get("root_path", "")
    return mounted.rstrip("/")


def page(request: Request, template: str, status: int = 200, **values: Any) -> Response:
    """`template` rendered with `values`, the CSRF token of this browser (a fresh CSRF cookie
    when it has none) and the mount path."""
    sessions = dashboard(request).sessions
    nonce = request.cookies.get(CSRF_COOKIE)
    fresh = not nonce
    if not nonce:
        nonce = sessions.new_nonce()
    html = TEMPLATES.get_template(template).render(
        csrf=sessions.csrf_token(nonce),
        root=root(request),
        path=request.url.path,
        logged_in=SESSION_COOKIE in request.cookies,
        login_needed=sessions.login_needed,
        **values,
    )
    response = HTMLResponse(html, status, headers=SECURITY_HEADERS)
    if fresh:
        set_cookie(request, response, CSRF_COOKIE, nonce)
    return response


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    """An HttpOnly, SameSite=Strict cookie for the dashboard's path, Secure over https."""
    response.set_cookie(
        name,
        value,
        path=root(request) or "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def back(request: Request, to: str) -> Response:
    """The answer to a form's POST: htmx reloads `to`; a plain form follows a 303 there."""
    target = root(request) + to
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, 303)


# -- filters -----------------------------------------------------------------------------------


def when(instant: datetime | None) -> str:
    """An instant in UTC to the second, or a dash."""
    if instant is None:
        return "—"
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def local(instant: datetime | None) -> str:
    """An instant in its own zone, with the zone's name."""
    if instant is None:
        return "—"
    return instant.strftime("%Y-%m-%d %H:%M:%S %Z")


def age(instant: datetime | None, now: datetime | None = None) -> str:
    """How long ago `instant` was, in its largest unit ("3 s", "4 min", "2 h", "5 d")."""
    if instant is None:
        return "—"
    return duration((now or datetime.now(UTC)) - instant)


def duration(span: timedelta) -> str:
    """A duration in its largest whole unit; "in 3 s" for a negative one (a future instant)."""
    seconds = span.total_seconds()
    prefix = "in " if seconds < 0 else ""
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{prefix}{int(seconds // size)} {unit}"
    return f"{prefix}{int(seconds)} s"


def pretty(value: Any) -> str:
    """A JSON value as indented text."""
    return msgspec.json.format(_pretty.encode(value), indent=2).decode()


def percent(fraction: float | None) -> str:
    """0.125 -> "12.5%"; a dash for no value."""
    return "—" if fraction is None else f"{fraction * 100:.1f}%"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("errands.web.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when, local=local, age=age, pretty=pretty, percent=percent, duration=duration
    )
    return env


TEMPLATES: Final = _environment()
