"""Fixtures for the fault tests: a SQLite file read straight with sqlite3, a trail, worker and
helper subprocesses that are SIGKILLed at teardown, and a deadline-bound poll.

The file is the `broker_url` of tests/system/conftest.py, so every test that reads it is marked
`brokers("sqlite")` and shows as skipped on the other brokers.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import errands
from errands.brokers.sqlite.broker import parse_url
from tests.system.faults.trail import Trail

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
TERMINAL = ("completed", "failed", "cancelled")


def wait_until(
    check: Callable[[], Any], *, within: timedelta, what: str, every: float = 0.05
) -> Any:
    """Poll `check` until it returns something truthy, or fail naming `what`."""
    deadline = time.monotonic() + within.total_seconds()
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {within}")
        time.sleep(every)  # state written by other processes; nothing to await


class Store:
    """The SQLite file of one test, read with sqlite3 directly (as an operator would)."""

    def __init__(self, url: str) -> None:
        self.path, _ = parse_url(url)
        self.url = url

    def connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        connection.row_factory = sqlite3.Row
        return connection

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        with self.connect() as connection:
            return connection.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Any = ()) -> Any:
        return self.query(sql, params)[0][0]

    def states(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.query("SELECT state, count(*) FROM jobs GROUP BY state")}

    def unfinished(self) -> int:
        return int(self.scalar("SELECT count(*) FROM jobs WHERE state NOT IN " + str(TERMINAL)))


class Processes:
    """Subprocesses of one test (workers, producers, lock holders); all SIGKILLed at the end."""

    def __init__(self, tmp_path: Path, store: Store, trail: Trail) -> None:
        self.tmp_path, self.store, self.trail = tmp_path, store, trail
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "ERRANDS_BROKER_URL": self.store.url,
            "ERRANDS_TEST_TRAIL": str(self.trail.path),
            "ERRANDS_EXTEND_EVERY": "0.3",
            "ERRANDS_RESCUE_EVERY": "0.3",
            "PYTHONPATH": str(ROOT),
            **extra,
        }

    def spawn(self, name: str, argv: list[str], **env: str) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"{name}-{len(self.procs)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv, env=self.env(**env), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        self.logs[proc.pid] = log
        return proc

    def worker(self, *args: str, lease: float = 10, **env: str) -> subprocess.Popen[bytes]:
        """`errands worker` on faultapp; waits until it logs that it started."""
        argv = [sys.executable, "-m", "errands", "worker", "tests.system.faults.faultapp:app"]
        proc = self.spawn("worker", [*argv, "--lease", str(lease), *args], **env)
        wait_until(
            lambda: "started" in self.log(proc) or proc.poll() is not None,
            within=timedelta(seconds=30),
            what="worker start-up",
        )
        assert proc.poll() is None, f"worker exited at start-up:\n{self.log(proc)}"
        return proc

    def script(self, name: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        """One of this directory's helper scripts, run as a module."""
        argv = [sys.executable, "-m", f"tests.system.faults.{name}", *args]
        return self.spawn(name, argv, **env)

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return self.logs[proc.pid].read_text(errors="replace")

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def kill_all(self) -> None:
        for proc in self.procs:
            self.kill(proc)


@pytest.fixture
def store(broker_url: str) -> Store:
    return Store(broker_url)


@pytest.fixture
def trail(tmp_path: Path) -> Trail:
    return Trail(tmp_path / "trail.txt")


@pytest.fixture
def producer(store: Store) -> Iterator[errands.App]:
    """An App on the test's file that enqueues faultapp's task calls (and creates the schema)."""
    app = errands.App(store.url)
    app.portal.call(app.open_async)
    yield app
    app.close()


@pytest.fixture
def procs(tmp_path: Path, store: Store, trail: Trail) -> Iterator[Processes]:
    running = Processes(tmp_path, store, trail)
    yield running
    running.kill_all()


def worker_alive(procs: Processes, proc: subprocess.Popen[bytes]) -> None:
    """The worker never exited and never re-executed itself (same pid, no restart logged)."""
    assert proc.poll() is None, f"worker exited with {proc.returncode}:\n{procs.log(proc)[-3000:]}"
    assert "restarting the worker" not in procs.log(proc)
