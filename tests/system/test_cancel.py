"""Cancelling a running job stops it within a second in every pool, in a real worker process.

async: the task is cancelled at its await; thread: `current_job().cancelled` turns true and the
attempt is abandoned; process: the child is killed and replaced.
"""

from __future__ import annotations

import contextlib
import time

import psutil
import pytest

import errands
from errands import JobState
from errands.settings import Settings
from tests.system import sysapp
from tests.system.conftest import WITHIN, Workers
from tests.system.ledger import Ledger

#: The promise: a running job stops within this long of its cancel.
STOPS_WITHIN = 1.0
DEFAULT_EXTENDS = {"ERRANDS_EXTEND_EVERY": str(Settings().extend_every.total_seconds())}


def _wait_gone(pid: int, within: float) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):  # gone already
        psutil.Process(pid).wait(timeout=within)


@pytest.mark.parametrize("pool", ["async", "thread", "process"])
def test_a_running_job_stops_within_a_second_of_its_cancel(
    app: errands.App, workers: Workers, ledger: Ledger, pool: str
) -> None:
    task = {"async": sysapp.cancel_async, "thread": sysapp.cancel_thread}.get(
        pool, sysapp.cancel_process
    )
    # The default extend interval (the tests' workers use a shorter one): cancel requests ride
    # on lease extensions, so this is the latency a user gets.
    workers.start("--pool", pool, "--concurrency", "2", lease=30, env=DEFAULT_EXTENDS)
    (handle,) = app.enqueue_many([task.call("victim")])
    ledger.wait_for("start", "victim", within=WITHIN)

    began = time.monotonic()
    handle.cancel()
    if pool == "process":
        _wait_gone(ledger.pids("start", "victim")[0], within=WITHIN.total_seconds())
    else:
        ledger.wait_for("stopped", "victim", within=WITHIN)
    stopped = time.monotonic() - began
    with pytest.raises(errands.JobCancelled):
        handle.result(timeout=WITHIN)
    print(f"{pool}: stopped {stopped * 1000:.0f} ms after the cancel")

    assert stopped <= STOPS_WITHIN
    assert handle.refresh().state is JobState.CANCELLED
    assert ledger.count("start", "victim") == 1  # never run again


def test_the_process_pool_replaces_the_child_of_a_cancelled_job(
    app: errands.App, workers: Workers, ledger: Ledger
) -> None:
    workers.start("--pool", "process", "--concurrency", "1", lease=30)
    (first,) = app.enqueue_many([sysapp.cancel_process.call("first")])
    ledger.wait_for("start", "first", within=WITHIN)
    first.cancel()

    (after,) = app.enqueue_many([sysapp.sleeper.call("after", 0)])  # --pool process runs it

    assert after.result(timeout=WITHIN) == "after"
    assert ledger.pids("start", "after") != ledger.pids("start", "first")
    with pytest.raises(errands.JobCancelled):
        first.result(timeout=WITHIN)
