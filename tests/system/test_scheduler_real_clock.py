"""Three `errands scheduler` processes on the real clock, one SIGKILLed every 10 seconds and
started again: an every-2-seconds schedule runs each slot exactly once, each starting within
a second of its time, on every broker (run side by side, so the time is spent once): half a
minute in the quick tier, a whole one with --run-slow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import errands
from errands.brokers.contract import Broker, JobQuery, Page
from errands.job import Job, JobState
from tests.conftest import require_service
from tests.system.brokers import SYSTEM, selected, why_unavailable

ROOT = Path(__file__).resolve().parents[2]
KILL_EVERY = 10.0
EVERY = timedelta(seconds=2)
LATE_AT_MOST = timedelta(seconds=1)


@dataclass
class Fleet:
    """Three schedulers and one worker on one broker's storage."""

    name: str
    url: str
    logs: Path
    schedulers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    worker: subprocess.Popen[bytes] | None = None
    started: int = 0

    def spawn(self, command: str) -> subprocess.Popen[bytes]:
        """Start `errands <command> tests.system.schedapp:app` with its log in `logs`."""
        self.started += 1
        env = {**os.environ, "ERRANDS_BROKER_URL": self.url, "PYTHONPATH": str(ROOT)}
        with open(self.logs / f"{self.name}-{command}-{self.started}.log", "wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "errands", command, "tests.system.schedapp:app"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        """SIGTERM the schedulers and the worker, SIGKILL any that lingers."""
        procs = [*self.schedulers, *([self.worker] if self.worker else [])]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def fleets(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[list[Fleet]]:
    """One fleet per selected broker, each on storage of its own, cleaned up after."""
    out = []
    for name in selected(request.config.getoption("--brokers")):
        why = why_unavailable(name)
        if why is not None:
            require_service(name, False, why)
        directory = tmp_path / name
        directory.mkdir()
        url = SYSTEM[name].url(directory)
        out.append(Fleet(name, url, tmp_path))
    yield out
    for fleet in out:
        SYSTEM[fleet.name].cleanup(fleet.url)


#: The quick tier runs half a minute (two kills); the full tier (--run-slow) the whole minute.
@pytest.mark.parametrize("run_for", [30.0, pytest.param(60.0, marks=pytest.mark.slow)])
def test_three_schedulers_with_kills_run_every_slot_once_and_on_time(
    fleets: list[Fleet], run_for: float
) -> None:
    try:
        for fleet in fleets:
            fleet.worker = fleet.spawn("worker")
            fleet.schedulers = [fleet.spawn("scheduler") for _ in range(3)]
        began = time.monotonic()
        kills = 0
        # The test's own duration: a kill every 10 s, on the real clock.
        while (elapsed := time.monotonic() - began) < run_for:
            time.sleep(min(KILL_EVERY - elapsed % KILL_EVERY, run_for - elapsed))
            if time.monotonic() - began >= run_for:
                break
            for fleet in fleets:
                victim = kills % 3
                fleet.schedulers[victim].send_signal(signal.SIGKILL)
                fleet.schedulers[victim].wait()
                fleet.schedulers[victim] = fleet.spawn("scheduler")
            kills += 1
        stopped_at = datetime.now(UTC)
        for fleet in fleets:
            for proc in fleet.schedulers:
                proc.send_signal(signal.SIGTERM)
            for proc in fleet.schedulers:
                assert proc.wait(timeout=20) == 0, f"{fleet.name}: a scheduler did not stop cleanly"
        reports = [check(fleet, stopped_at) for fleet in fleets]
    finally:
        for fleet in fleets:
            fleet.stop()
    assert kills == int(run_for / KILL_EVERY) - 1
    print("\n" + "\n".join(reports))


def check(fleet: Fleet, stopped_at: datetime) -> str:
    """Assert that `fleet`'s slots ran once each and on time; a line of figures for the log."""
    app = errands.App(fleet.url)
    try:
        [info] = app.schedules.list()
        assert info.record is not None
        created = info.record.created_at
        jobs = wait_all_done(app, list_all(app))
    finally:
        app.close()
    jobs.sort(key=_slot)
    slots = [_slot(job) for job in jobs]
    assert len(set(slots)) == len(slots), f"{fleet.name}: a slot ran twice"
    # Every 2-second slot from the schedule's creation to the last full second before the
    # schedulers stopped (a later one may or may not have been reached).
    first = created + (EVERY - (created - datetime(1970, 1, 1, tzinfo=UTC)) % EVERY)
    expected = []
    while first <= stopped_at - timedelta(seconds=1):
        expected.append(first)
        first += EVERY
    assert slots[: len(expected)] == expected, f"{fleet.name}: slots missing"
    late = sorted(_started(job) - slot for job, slot in zip(jobs, slots, strict=True))
    assert late[-1] <= LATE_AT_MOST, f"{fleet.name}: a slot started {late[-1]} late"
    p50 = late[len(late) // 2].total_seconds() * 1000
    return (
        f"{fleet.name}: {len(slots)} slots ran once each; start after the slot: "
        f"median {p50:.1f} ms, max {late[-1].total_seconds() * 1000:.1f} ms"
    )


def _started(job: Job) -> datetime:
    assert job.started_at is not None
    return job.started_at


def _slot(job: Job) -> datetime:
    assert job.result is not None
    return datetime.fromisoformat(job.result.decode().strip('"'))


def list_all(app: errands.App) -> list[Job]:
    """Every job of the storage."""
    jobs: list[Job] = []
    query: JobQuery | None = JobQuery(limit=500)
    while query is not None:
        page = app.portal.call(app.call_broker, _lister(query))
        jobs.extend(page.jobs)
        query = JobQuery(limit=500, before_id=page.next_cursor) if page.next_cursor else None
    return jobs


def _lister(query: JobQuery) -> Callable[[Broker], Awaitable[Page]]:
    return lambda broker: broker.list_jobs(query)


def wait_all_done(app: errands.App, jobs: list[Job]) -> list[Job]:
    """The jobs once the worker has finished them all (it is still running)."""
    ids = [job.id for job in jobs]
    done = app.portal.call(app.call_broker, lambda b: b.wait_done(ids, timedelta(seconds=30)))
    assert all(job.state is JobState.COMPLETED for job in done), [j.state for j in done]
    return done
