"""Bearer tokens, loopback-only without them, the body cap and problem+json errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

import errands
from errands.web import WebConfig, create_app
from tests.web.conftest import LOCAL

PROBLEM = "application/problem+json"


@pytest.fixture
def memory_app() -> Iterator[errands.App]:
    """An App on the memory broker: these tests are about HTTP, not storage."""
    app = errands.App("memory://")
    yield app
    app.close()


def test_with_tokens_a_request_needs_one_of_them(memory_app: errands.App) -> None:
    web = create_app(memory_app, tokens=["s3cret", "other"], config=WebConfig(maintenance=False))
    with TestClient(web, client=("127.0.0.1", 1)) as client:
        missing = client.get("/api/v1/queues")
        assert (missing.status_code, missing.headers["content-type"]) == (401, PROBLEM)
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.get("/api/v1/queues", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = client.get("/api/v1/queues", headers={"Authorization": "Bearer other"})
        assert right.status_code == 200
        assert client.get("/api/v1/health").status_code == 200  # for load balancers
        assert client.get("/metrics").status_code == 401


def test_without_tokens_only_clients_on_this_machine_are_served(memory_app: errands.App) -> None:
    web = create_app(memory_app, tokens=[], config=WebConfig(maintenance=False))
    with TestClient(web, client=("10.1.2.3", 1)) as remote:
        refused = remote.get("/api/v1/queues")
        assert (refused.status_code, refused.headers["content-type"]) == (403, PROBLEM)
    with TestClient(web, client=("::1", 1)) as local:
        assert local.get("/api/v1/queues").status_code == 200


def test_tokens_come_from_the_environment(
    memory_app: errands.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERRANDS_API_TOKENS", "a1, b2")
    web = create_app(memory_app, config=WebConfig(maintenance=False))
    with TestClient(web, client=("10.1.2.3", 1)) as client:
        assert client.get("/api/v1/queues", headers={"Authorization": "Bearer b2"}).is_success


def test_a_body_over_the_cap_is_refused_with_413(memory_app: errands.App) -> None:
    config = WebConfig(maintenance=False, max_body_bytes=1000)
    with TestClient(create_app(memory_app, tokens=[], config=config), client=LOCAL) as client:
        big = {"task": "ext.big", "args": ["x" * 2000]}
        refused = client.post("/api/v1/jobs", json=big)
        assert (refused.status_code, refused.headers["content-type"]) == (413, PROBLEM)
        chunks = (b'{"task": "ext.big", "args": ["' + b"x" * 500, b"x" * 600 + b'"]}')
        streamed = client.post("/api/v1/jobs", content=iter(chunks))  # no Content-Length
        assert streamed.status_code == 413
        assert client.get("/api/v1/queues").json() == []  # nothing was stored


def test_errors_are_problem_details(memory_app: errands.App) -> None:
    with TestClient(
        create_app(memory_app, tokens=[], config=WebConfig(maintenance=False)), client=LOCAL
    ) as c:
        for reply, status in [
            (c.get("/api/v1/nowhere"), 404),
            (c.delete("/api/v1/jobs"), 405),
            (c.post("/api/v1/jobs", content=b"{not json"), 422),
            (c.post("/api/v1/jobs", json={"task": "x", "surprise": 1}), 422),
            (c.post("/api/v1/jobs", json={"task": "x", "eta": "2030-01-01T00:00:00"}), 422),
            (c.get("/api/v1/jobs/nope"), 404),
            (c.get("/api/v1/jobs", params={"limit": "many"}), 422),
        ]:
            assert reply.status_code == status, reply.text
            assert reply.headers["content-type"] == PROBLEM
            problem = reply.json()
            assert problem["status"] == status
            assert problem["type"].startswith("https://")
            assert problem["title"]
            assert problem["detail"]
