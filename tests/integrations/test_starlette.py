"""FastAPI and Starlette: the lifespan opens and closes the App, handlers enqueue with
`enqueue_async`, and the HTTP API mounted under a path answers there."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import errands
from errands.integrations.starlette import errands_lifespan, get_app
from errands.web import create_app
from tests.integrations.conftest import RecordingBroker

with warnings.catch_warnings():
    # Starlette warns that its TestClient will move to httpx2, which is not released here.
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def shop_api(app: errands.App) -> FastAPI:
    """A FastAPI app whose order endpoint enqueues a receipt."""
    api = FastAPI(lifespan=errands_lifespan(app))
    send_receipt = app.get_task("shop.send_receipt")

    @api.post("/orders/{order_id}")
    async def place_order(order_id: int) -> dict[str, str]:
        job = await send_receipt.enqueue_async(order_id)
        return {"job": job.id}

    return api


def test_startup_opens_the_app_and_shutdown_closes_it(
    app: errands.App, broker: RecordingBroker
) -> None:
    with TestClient(shop_api(app)):
        assert broker.events == ["open"]  # before any request

    assert broker.events == ["open", "close"]
    assert not app.portal.started  # the App's loop thread is stopped too


def test_a_handler_enqueues_and_the_job_runs(app: errands.App) -> None:
    with TestClient(shop_api(app)) as client:
        response = client.post("/orders/42")

    assert response.status_code == 200
    job = app.job(response.json()["job"])
    assert job.refresh().state == "available"
    assert app.run_until_idle() == 1
    assert job.result(timeout=5) == "receipt for order 42 sent"


def test_get_app_is_a_dependency_that_sends_by_name(app: errands.App) -> None:
    api = FastAPI(lifespan=errands_lifespan(app))

    @api.post("/refunds/{order_id}")
    async def refund(order_id: int, shop: Annotated[errands.App, Depends(get_app)]) -> str:
        job = await shop.enqueue_async("shop.send_receipt", order_id)
        return job.id

    with TestClient(api) as client:
        job_id = client.post("/refunds/7").json()

    assert app.run_until_idle() == 1
    assert app.job(job_id).result(timeout=5) == "receipt for order 7 sent"


def test_the_users_lifespan_runs_inside_with_its_state_kept(
    app: errands.App, broker: RecordingBroker
) -> None:
    send_receipt = app.get_task("shop.send_receipt")

    @contextlib.asynccontextmanager
    async def warm_up(api: Starlette) -> AsyncIterator[dict[str, Any]]:
        await send_receipt.enqueue_async(1)  # the App is open already
        yield {"greeting": "hello"}
        await send_receipt.enqueue_async(2)  # and still open at shutdown
        broker.events.append("user shutdown")

    async def greet(request: Request) -> JSONResponse:
        return JSONResponse([request.state.greeting, get_app(request) is app])

    web = Starlette(routes=[Route("/", greet)], lifespan=errands_lifespan(app, warm_up))
    with TestClient(web) as client:
        assert client.get("/").json() == ["hello", True]

    assert broker.events == ["open", "user shutdown", "close"]
    assert app.run_until_idle() == 2


def test_the_http_api_mounted_under_a_path_answers_there(app: errands.App) -> None:
    api = shop_api(app)
    api.mount("/errands", create_app(app, tokens=["secret"]))

    with TestClient(api) as client:
        health = client.get("/errands/api/v1/health")
        job_id = client.post("/orders/5").json()["job"]
        seen = client.get(
            f"/errands/api/v1/jobs/{job_id}", headers={"Authorization": "Bearer secret"}
        )
        refused = client.get(f"/errands/api/v1/jobs/{job_id}")

    assert (health.status_code, health.json()["status"]) == (200, "ok")
    assert seen.status_code == 200
    assert (seen.json()["task"], seen.json()["state"]) == ("shop.send_receipt", "available")
    assert refused.status_code == 401


def test_without_the_lifespan_get_app_says_what_is_missing(app: errands.App) -> None:
    web = Starlette(routes=[Route("/", lambda request: JSONResponse(get_app(request).queues))])

    with TestClient(web) as client, pytest.raises(RuntimeError, match="errands_lifespan"):
        client.get("/")


def test_a_starlette_app_mounts_the_api_beside_its_routes(app: errands.App) -> None:
    web = Starlette(
        routes=[Mount("/ops", create_app(app, tokens=["t"]))], lifespan=errands_lifespan(app)
    )

    with TestClient(web) as client:
        assert client.get("/ops/api/v1/health").json()["status"] == "ok"
