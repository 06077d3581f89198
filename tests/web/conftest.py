"""Fixtures for the HTTP API: an App on every broker of the registry with the API in front of
it (Starlette's TestClient), and real `errands serve` and `errands worker` subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

with warnings.catch_warnings():
    # Starlette warns that its TestClient will move to httpx2, which is not released here.
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

import errands
from errands.web import WebConfig, create_app
from tests.brokers.registry import REGISTRY, fresh_storage

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
#: A TestClient's address as a client on this machine (its default, "testclient", is not).
LOCAL = ("127.0.0.1", 50000)
#: The tasks every served App registers (written as a module for the subprocesses).
TASKS = """
import errands

app = errands.App()


@app.task(name="math.add")
def add(a, b):
    return a + b

"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The same warning, given again by each TestClient made.
    quiet = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(quiet)


@pytest.fixture(params=sorted(REGISTRY))
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Fresh storage on each broker of the registry (skips, or fails under
    ERRANDS_REQUIRE_SERVICES=1, when its server is down)."""
    with fresh_storage(REGISTRY[request.param], tmp_path) as url:
        yield url


@pytest.fixture
def app(broker_url: str) -> Iterator[errands.App]:
    """An App on the broker under test with the tasks of TASKS."""
    namespace: dict[str, object] = {}
    exec(TASKS.replace("errands.App()", f"errands.App({broker_url!r})"), namespace)
    made = namespace["app"]
    assert isinstance(made, errands.App)
    yield made
    made.close()


@pytest.fixture
def api(app: errands.App) -> Iterator[TestClient]:
    """The API of `app`, under /api/v1, without a token (a loopback client)."""
    web = create_app(app, tokens=(), config=WebConfig(maintenance=False))
    with TestClient(web, client=LOCAL) as client:
        client.base_url = client.base_url.join("/api/v1/")
        yield client


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Processes:
    """`errands serve` and `errands worker` subprocesses of one test, stopped at its end."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.tmp_path, self.url = tmp_path, url
        (tmp_path / "webtasks.py").write_text(textwrap.dedent(TASKS))
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a child: the broker URL, fast rescue, errands importable."""
        return {
            **os.environ,
            "ERRANDS_BROKER_URL": self.url,
            "ERRANDS_RESCUE_EVERY": "0.2",
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
            **extra,
        }

    def start(
        self, *args: str, name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Run `errands ARGS` with the tasks module importable; output goes to NAME.log."""
        command = [sys.executable, "-m", "errands", "--app-dir", str(self.tmp_path), *args]
        with open(self.tmp_path / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                command, env=env or self.env(), stdout=log, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        return proc

    def serve(
        self, *options: str, target: str = "webtasks:app", env: dict[str, str] | None = None
    ) -> str:
        """Start the API of `target` and return its base URL once it answers."""
        port = free_port()
        args = ("serve", target, "--port", str(port), *options)
        proc = self.start(*args, name="serve", env=env)
        base = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"errands serve exited: {self.log('serve')}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    return base
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"errands serve did not answer: {self.log('serve')}")

    def log(self, name: str) -> str:
        """What child NAME wrote."""
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        """Terminate every child still running (kill it if it lingers)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Subprocesses on a SQLite file of this test."""
    procs = Processes(tmp_path, f"sqlite:///{tmp_path / 'errands.db'}")
    try:
        yield procs
    finally:
        procs.stop()
