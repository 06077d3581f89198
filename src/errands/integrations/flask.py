"""Flask: the `Errands` extension holds an errands App per Flask app, for views to enqueue with.

The App is yours (with your tasks registered on it) or is built from the config key
`ERRANDS_BROKER_URL`, for producers that send by name. Opening happens on the first enqueue and
closing at process exit (every App registers its own close); running jobs is left to workers.
"""

from __future__ import annotations

from flask import Flask, current_app

from errands.app import App

#: The key of `flask_app.extensions` that holds the App, and the config key of its broker URL.
EXTENSION = "errands"
CONFIG_URL = "ERRANDS_BROKER_URL"


class Errands:
    """`Errands(flask_app, errands_app)`, or `ext = Errands(errands_app=...)` at import and
    `ext.init_app(flask_app)` in your app factory. In a view, `task.enqueue(...)` (or `await
    task.enqueue_async(...)` in an async view) stores a job; `get_app()` gives the App."""

    def __init__(self, flask_app: Flask | None = None, errands_app: App | None = None) -> None:
        self.errands_app = errands_app
        if flask_app is not None:
            self.init_app(flask_app)

    def init_app(self, flask_app: Flask, errands_app: App | None = None) -> App:
        """Attach an App to `flask_app`: `errands_app`, else the extension's, else one built
        from `flask_app.config["ERRANDS_BROKER_URL"]`; returns it."""
        app = errands_app or self.errands_app or _from_config(flask_app)
        flask_app.extensions[EXTENSION] = app
        return app


def get_app() -> App:
    """The errands App of the current Flask app (inside a request or app context)."""
    app = current_app.extensions.get(EXTENSION)
    if not isinstance(app, App):
        raise RuntimeError(
            f"Flask app {current_app.name!r} has no errands App: call "
            "Errands(flask_app, errands_app) or ext.init_app(flask_app) first"
        )
    return app


def _from_config(flask_app: Flask) -> App:
    url = flask_app.config.get(CONFIG_URL)
    if not url:
        raise RuntimeError(
            f"Errands needs an errands App or {CONFIG_URL} in the config of {flask_app.name!r}"
        )
    return App(str(url))
