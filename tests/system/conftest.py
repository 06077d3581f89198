"""Fixtures for system tests: a broker per `--brokers` entry, a ledger and real worker
subprocesses.

Every test that uses `app` (or `broker_url`) runs once per selected broker; see
tests/system/brokers.py for the registry and the `brokers(...)` marker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import errands
from tests.brokers.registry import REGISTRY, fresh_storage
from tests.conftest import require_service
from tests.system.brokers import SYSTEM, selected, why_unavailable
from tests.system.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]


class Workers:
    """Starts `errands worker` subprocesses and kills whatever is left at the end."""

    def __init__(self, tmp_path: Path, url: str, ledger: Ledger) -> None:
        self.tmp_path, self.url, self.ledger = tmp_path, url, ledger
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ERRANDS_BROKER_URL": self.url,
            "ERRANDS_TEST_LEDGER": str(self.ledger.path),
            "ERRANDS_EXTEND_EVERY": "0.3",
            "ERRANDS_RESCUE_EVERY": "0.3",
            "PYTHONPATH": str(ROOT),
        }

    def start(
        self, *args: str, lease: float = 1.5, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log_path = self.tmp_path / f"worker-{len(self.procs)}.log"
        with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "errands",
                    "worker",
                    "tests.system.sysapp:app",
                    "--lease",
                    str(lease),
                    *args,
                ],
                env={**self.env(), **(env or {})},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def wait_log(self, index: int, text: str, within: timedelta) -> None:
        """Wait until worker number `index` has logged `text`."""
        log = self.tmp_path / f"worker-{index}.log"
        deadline = time.monotonic() + within.total_seconds()
        while text not in log.read_text():
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {index} never logged {text!r}: {log.read_text()}")
            time.sleep(0.02)  # a log written by another process; nothing to await

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.txt")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test that needs a broker once per selected broker; a broker that a
    `brokers(...)` marker leaves out stays in the run as a skip with the marker's reason."""
    if "broker_url" not in metafunc.fixturenames:
        return
    only = metafunc.definition.get_closest_marker("brokers")
    params = []
    for name in selected(metafunc.config.getoption("--brokers")):
        marks = []
        if only is not None and name not in only.args:
            why = only.kwargs.get("reason", f"runs only on {', '.join(only.args)}")
            marks.append(pytest.mark.skip(reason=f"not on {name}: {why}"))
        params.append(pytest.param(name, marks=marks, id=name))
    metafunc.parametrize("broker_url", params, indirect=True)


@pytest.fixture
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh URL on the broker this run of the test is about (skips, or fails under
    ERRANDS_REQUIRE_SERVICES=1, when its server is not reachable)."""
    entry = SYSTEM[request.param]
    why = why_unavailable(entry.name)
    if why is not None:
        require_service(entry.name, False, why)
    url = entry.url(tmp_path)
    yield url
    entry.cleanup(url)


@pytest.fixture(params=sorted(REGISTRY))
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Storage of its own on every registered broker, the memory broker included, for tests
    that run in one process (no worker subprocess)."""
    with fresh_storage(REGISTRY[request.param], tmp_path) as url:
        yield url


@pytest.fixture
def app(broker_url: str, ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> Iterator[errands.App]:
    monkeypatch.setenv("ERRANDS_BROKER_URL", broker_url)
    monkeypatch.setenv("ERRANDS_TEST_LEDGER", str(ledger.path))
    producer = errands.App(broker_url)  # enqueues sysapp's task calls into this test's storage
    yield producer
    producer.close()


@pytest.fixture
def workers(tmp_path: Path, app: errands.App, ledger: Ledger) -> Iterator[Workers]:
    pool = Workers(tmp_path, app.settings.broker_url, ledger)
    yield pool
    pool.stop_all()


WITHIN = timedelta(seconds=30)
