"""Logging in and out of the dashboard: an API token exchanged for a signed login cookie."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from errands.web.dashboard.forms import field, mutation
from errands.web.dashboard.rendering import back, dashboard, page, root, set_cookie
from errands.web.dashboard.sessions import SESSION_COOKIE


async def login_form(request: Request) -> Response:
    """GET /login: the form (straight to the overview when the server has no tokens)."""
    if not dashboard(request).sessions.login_needed:
        return RedirectResponse(f"{root(request)}/", 303)
    wanted = _local(request.query_params.get("next", "/"))
    return page(request, "login.html", title="Log in", next=wanted, error=None)


@mutation
async def login(request: Request) -> Response:
    """POST /login: a right token sets the login cookie; a wrong one shows the form again."""
    sessions = dashboard(request).sessions
    wanted = _local(await field(request, "next"))
    token = sessions.token_matches(await field(request, "token"))
    if token is None:
        error = "That is not one of this server's tokens."
        return page(request, "login.html", 401, title="Log in", next=wanted, error=error)
    response = RedirectResponse(root(request) + wanted, 303)
    set_cookie(request, response, SESSION_COOKIE, sessions.issue(token))
    return response


@mutation
async def logout(request: Request) -> Response:
    """POST /logout: forget the login cookie."""
    response = back(request, "/login")
    response.delete_cookie(SESSION_COOKIE, path=root(request) or "/")
    return response


def _local(path: str) -> str:
    """`path` if it stays on this site, else the overview (no open redirects)."""
    return path if path.startswith("/") and not path.startswith("//") else "/"


ROUTES: Final = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
