"""The dashboard's routes and the state they share, for create_app to add beside the API."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from errands.app import App
from errands.web.config import WebConfig
from errands.web.dashboard import deadletters, jobs, login, overview, system, workflows
from errands.web.dashboard.redaction import Redactor
from errands.web.dashboard.rendering import Dashboard
from errands.web.dashboard.sessions import Sessions

STATIC = Path(__file__).resolve().parent / "static"
#: The files /static serves, by name: a fixed list, so no path can reach outside the folder.
_FILES = {path.name: path for path in STATIC.iterdir() if path.is_file()}


def dashboard_routes() -> list[BaseRoute]:
    """Every page and form of the dashboard, and its static files under /static."""
    return [
        *overview.ROUTES,
        *jobs.ROUTES,
        *deadletters.ROUTES,
        *system.ROUTES,
        *workflows.ROUTES,
        *login.ROUTES,
        Route("/static/{name}", static_file, methods=["GET", "HEAD"]),
    ]


async def static_file(request: Request) -> Response:
    """GET /static/{name}: htmx, the stylesheet, the script and the icon of the pages."""
    found = _FILES.get(request.path_params["name"])
    if found is None:
        return Response("not found", 404, media_type="text/plain")
    return FileResponse(found, headers={"Cache-Control": "public, max-age=3600"})


def dashboard_state(app: App, config: WebConfig) -> Dashboard:
    """What the dashboard's routes share: the App, the limits, logins and redaction."""
    return Dashboard(app, config, Sessions(config.tokens), Redactor(config.redact))
