"""The OpenAPI document is valid OpenAPI 3.1 and names every route the API serves."""

from __future__ import annotations

from openapi_spec_validator import validate
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

import errands
from errands.web import WebConfig, create_app
from tests.web.conftest import LOCAL


def test_the_document_is_valid_openapi_3_1_and_lists_every_route() -> None:
    app = errands.App("memory://")
    try:
        web = create_app(app, tokens=[], config=WebConfig(maintenance=False))
        with TestClient(web, client=LOCAL) as client:
            document = client.get("/api/v1/openapi.json").json()
    finally:
        app.close()
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": "/api/v1"}]
    [mount] = [route for route in web.routes if isinstance(route, Mount)]
    served = {
        (route.path, method.lower())
        for route in mount.routes
        if isinstance(route, Route) and route.path != "/openapi.json"
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert documented == served
