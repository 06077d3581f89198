"""create_app mounted inside another ASGI app, as a user would add it to theirs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

import errands
from errands.web import create_app
from tests.web.conftest import LOCAL


def test_the_api_mounts_under_a_path_of_another_app() -> None:
    app = errands.App("memory://")
    web = create_app(app, tokens=["t"])

    @contextlib.asynccontextmanager
    async def lifespan(parent: Starlette) -> AsyncIterator[None]:
        async with web.router.lifespan_context(web):  # the API's rescuer runs with the parent
            yield

    parent = Starlette(routes=[Mount("/errands", app=web)], lifespan=lifespan)
    auth = {"Authorization": "Bearer t"}
    try:
        with TestClient(parent, client=LOCAL) as client:
            assert client.get("/errands/api/v1/health").json() == {"status": "ok"}
            assert client.get("/errands/api/v1/queues").status_code == 401
            job = {"task": "ext.mounted"}
            assert client.post("/errands/api/v1/jobs", json=job, headers=auth).status_code == 201
            document = client.get("/errands/api/v1/openapi.json", headers=auth).json()
            assert document["servers"] == [{"url": "/errands/api/v1"}]
    finally:
        app.close()
