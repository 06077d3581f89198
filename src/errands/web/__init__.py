"""The HTTP API (`errands[web]`): `create_app(app)` is an ASGI application that enqueues,
inspects and works the jobs of an errands App; `errands serve module:app` runs it on uvicorn.
See docs/http.md."""

from errands.web.application import create_app
from errands.web.config import WebConfig

__all__ = ["WebConfig", "create_app"]
