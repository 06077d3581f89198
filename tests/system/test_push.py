"""HTTP push targets against a real HTTP server on 127.0.0.1: an in-process worker sends each
job as a request and the server's answer decides the job (200 completes, 429 with Retry-After
and 500 retry, 404 fails at once, no answer within the deadline fails the attempt).

The receiver is a Starlette app under uvicorn on the test's own event loop, beside the worker;
it checks every signature with `errands.push.verify_signature` and records what it saw.
The Retry-After test is about real time and waits its one second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import errands
from errands.push import InvalidSignature, verify_signature
from tests.brokers.registry import REGISTRY, fresh_storage

SECRET = "test-push-secret"
FAST = errands.RetryPolicy(base=timedelta(milliseconds=50), jitter=False)
WITHIN = timedelta(seconds=20)
#: Stored instants are milliseconds: a due time may read up to a millisecond early.
MS = 0.002


@dataclass(frozen=True)
class Seen:
    """One request as the receiver got it."""

    path: str
    method: str
    at: float  # time.monotonic() on arrival
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int] | None


class Receiver:
    """Answers as each path says and records every request; `/slow` hangs until released."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.calls: Counter[str] = Counter()
        self.release = asyncio.Event()
        self.server: uvicorn.Server | None = None
        self.app = Starlette(routes=[Route("/{path}", self.answer, methods=["GET", "POST", "PUT"])])

    def open_connections(self) -> int:
        """Connections the server holds open now."""
        assert self.server is not None
        return len(self.server.server_state.connections)

    def of(self, path: str) -> list[Seen]:
        """The requests made to `path`, in order."""
        return [seen for seen in self.seen if seen.path == path]

    async def answer(self, request: Request) -> Response:
        body = await request.body()
        path = request.path_params["path"]
        peer = (request.client.host, request.client.port) if request.client else None
        self.seen.append(
            Seen(path, request.method, time.monotonic(), dict(request.headers), body, peer)
        )
        self.calls[path] += 1
        first = self.calls[path] == 1
        try:
            verify_signature(SECRET, body, request.headers.get("errands-signature"))
        except InvalidSignature as error:
            return PlainTextResponse(str(error), status_code=401)
        if path == "ok":
            return JSONResponse({"got": json.loads(body) if body else None})
        if path == "busy" and first:
            return PlainTextResponse("slow down", status_code=429, headers={"Retry-After": "1"})
        if path == "flaky" and first:
            return PlainTextResponse("boom", status_code=500)
        if path == "missing":
            return PlainTextResponse("no such hook", status_code=404)
        if path == "slow":
            await self.release.wait()
        return PlainTextResponse("done")


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    """The receiver, serving on a free port of 127.0.0.1; its base URL."""
    made = Receiver()
    config = uvicorn.Config(
        made.app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        timeout_keep_alive=60,  # longer than any test: only the client closes a connection
    )
    server = made.server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:  # uvicorn offers no event to await
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert not serving.done(), serving
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield made, f"http://127.0.0.1:{port}"
    made.release.set()
    server.should_exit = True
    await serving


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Storage of its own on the memory, SQLite and Redis brokers."""
    with fresh_storage(REGISTRY[request.param], tmp_path) as url:
        yield url


@pytest.fixture
async def app(store_url: str) -> AsyncIterator[errands.App]:
    """An App on the test's loop, with an in-process worker running while the test does."""
    made = errands.App(store_url)
    made.portal.adopt(asyncio.get_running_loop())
    yield made
    await made.close_async()


async def run_jobs(app: errands.App, *handles: errands.JobHandle[Any]) -> list[errands.Job]:
    """Run a worker until each job has ended; the jobs as stored then."""
    worker = app.worker()
    running = asyncio.ensure_future(worker.run())
    try:
        for handle in handles:
            with contextlib.suppress(errands.JobFailed):  # the caller looks at each state
                await handle.result_async(timeout=WITHIN)
    finally:
        worker.request_stop()
        await running
    return [await handle.refresh_async() for handle in handles]


async def test_a_2xx_completes_the_job_with_the_answer_signed_and_labelled(
    app: errands.App, receiver: tuple[Receiver, str]
) -> None:
    seen, base = receiver
    hook = app.http_target("hooks.ok", url=f"{base}/ok", secret=SECRET)
    handle = await hook.options(headers={"X-Tenant": "acme"}).enqueue_async({"order": 42})
    [job] = await run_jobs(app, handle)
    assert job.state is errands.JobState.COMPLETED
    assert await handle.result_async() == {
        "status": 200,
        "body": {"got": {"order": 42}},
        "truncated": False,
    }
    [request] = seen.of("ok")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["errands-job-id"] == str(handle.id)
    assert request.headers["errands-attempt"] == "1"
    assert request.headers["errands-task"] == "hooks.ok"
    assert request.headers["x-tenant"] == "acme"


async def test_a_target_is_enqueued_by_name_like_any_task(
    app: errands.App, receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen, base = receiver
    monkeypatch.setenv("ERRANDS_PUSH_SECRET", SECRET)  # the secret from the environment
    app.http_target("hooks.by-name", url=f"{base}/ok", method="PUT")
    handle = await app.enqueue_async("hooks.by-name", ["a", 1])
    [job] = await run_jobs(app, handle)
    assert job.state is errands.JobState.COMPLETED
    assert [s.method for s in seen.of("ok")] == ["PUT"]
    assert (await handle.result_async())["body"] == {"got": ["a", 1]}


async def test_a_429_is_retried_no_sooner_than_its_retry_after(
    app: errands.App, receiver: tuple[Receiver, str]
) -> None:
    seen, base = receiver
    hook = app.http_target("hooks.busy", url=f"{base}/busy", secret=SECRET)
    [job] = await run_jobs(app, await hook.enqueue_async({"n": 1}))
    assert (job.state, job.attempt) == (errands.JobState.COMPLETED, 2)
    [refused] = job.errors
    assert refused.type == "PushRetry"
    assert "answered 429, Retry-After 1s: slow down" in refused.message
    first, second = seen.of("busy")
    assert second.at - first.at >= 1.0 - MS
    assert second.headers["errands-attempt"] == "2"


async def test_a_500_is_retried_after_the_backoff_and_then_completes(
    app: errands.App, receiver: tuple[Receiver, str]
) -> None:
    seen, base = receiver
    hook = app.http_target("hooks.flaky", url=f"{base}/flaky", secret=SECRET, retry=FAST)
    [job] = await run_jobs(app, await hook.enqueue_async())
    assert (job.state, job.attempt) == (errands.JobState.COMPLETED, 2)
    assert "answered 500" in job.errors[0].message
    assert [s.body for s in seen.of("flaky")] == [b"", b""]  # no payload, no body
    first, second = seen.of("flaky")
    assert second.at - first.at >= FAST.base.total_seconds() - MS


async def test_a_404_fails_the_job_at_once_with_attempts_left(
    app: errands.App, receiver: tuple[Receiver, str]
) -> None:
    seen, base = receiver
    hook = app.http_target("hooks.missing", url=f"{base}/missing", secret=SECRET, max_attempts=5)
    [job] = await run_jobs(app, await hook.enqueue_async({"n": 1}))
    assert (job.state, job.fail_reason, job.attempt) == (
        errands.JobState.FAILED,
        errands.FailReason.ERROR,
        1,
    )
    assert job.errors[0].type == "PushRejected"
    assert "answered 404; not retried: no such hook" in job.errors[0].message
    assert len(seen.of("missing")) == 1


async def test_a_wrong_secret_is_refused_by_the_receiver_and_never_retried(
    app: errands.App, receiver: tuple[Receiver, str]
) -> None:
    seen, base = receiver
    hook = app.http_target("hooks.forged", url=f"{base}/ok", secret="not-the-secret")
    [job] = await run_jobs(app, await hook.enqueue_async({"n": 1}))
    assert (job.state, job.attempt) == (errands.JobState.FAILED, 1)
    assert len(seen.of("ok")) == 1
    assert "answered 401" in job.errors[0].message
    assert "(mismatch)" in job.errors[0].message


async def test_a_target_that_does_not_answer_fails_each_attempt_at_its_deadline(
    app: errands.App, receiver: tuple[Receiver, str]
) -> None:
    seen, base = receiver
    deadline = timedelta(milliseconds=300)
    hook = app.http_target(
        "hooks.slow",
        url=f"{base}/slow",
        secret=SECRET,
        timeout=deadline,
        max_attempts=2,
        retry=FAST,
    )
    started = time.monotonic()
    [job] = await run_jobs(app, await hook.enqueue_async({"n": 1}))
    assert (job.state, job.attempt) == (errands.JobState.FAILED, 2)
    assert [e.kind for e in job.errors] == [errands.ErrorKind.TIMEOUT] * 2
    assert job.errors[0].message == f"POST {base}/slow did not answer within 0.3s"
    assert len(seen.of("slow")) == 2
    assert time.monotonic() - started >= 2 * deadline.total_seconds()


async def test_an_unreachable_target_is_retried_until_its_attempts_are_spent(
    app: errands.App,
) -> None:
    with socket.socket() as closed:  # a port nobody listens on once this socket is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    hook = app.http_target(
        "hooks.gone", url=f"http://127.0.0.1:{port}/", max_attempts=2, retry=FAST
    )
    [job] = await run_jobs(app, await hook.enqueue_async({"n": 1}))
    assert (job.state, job.attempt) == (errands.JobState.FAILED, 2)
    assert [e.type for e in job.errors] == ["PushRetry", "PushRetry"]
    assert "ConnectError" in job.errors[0].message


async def test_a_worker_pushes_through_one_kept_alive_client_it_closes_at_its_stop(
    app: errands.App, receiver: tuple[Receiver, str]
) -> None:
    seen, base = receiver
    hook = app.http_target("hooks.ok", url=f"{base}/ok", secret=SECRET)
    worker = app.worker()
    running = asyncio.ensure_future(worker.run())
    try:
        for n in range(3):  # one after the other, so one connection serves them all
            await (await hook.enqueue_async(n)).result_async(timeout=WITHIN)
    finally:
        worker.request_stop()
        await running
    assert len({s.peer for s in seen.of("ok")}) == 1
    deadline = time.monotonic() + 2
    while seen.open_connections():  # the stop closes the client; the server then sees it
        assert time.monotonic() < deadline, "the stopped worker left its connection open"
        await asyncio.sleep(0.01)
