"""Real worker processes, really killed: nothing accepted is lost."""

from __future__ import annotations

import signal
from datetime import timedelta

import errands
from errands import JobState
from tests.system import sysapp
from tests.system.conftest import WITHIN, Workers
from tests.system.ledger import Ledger


def test_job_of_a_sigkilled_worker_runs_again_in_another_worker(
    app: errands.App, workers: Workers, ledger: Ledger
) -> None:
    handles = app.enqueue_many(
        [sysapp.sleeper_once.call("victim", 30)]
        + [sysapp.sleeper.call(f"bystander-{i}", 0.05) for i in range(20)]
    )
    first = workers.start("--pool", "thread", "--concurrency", "4", "--queues", "default")
    ledger.wait_for("start", "victim", within=WITHIN)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    workers.start("--pool", "thread", "--concurrency", "4", "--queues", "default")
    values = [h.result(timeout=WITHIN) for h in handles]

    assert values == ["victim"] + [f"bystander-{i}" for i in range(20)]
    victim = handles[0].refresh()
    assert victim.state is JobState.COMPLETED
    assert victim.attempt == 2  # the killed run, then the rescued one
    assert victim.crashes == 1
    assert ledger.count("start", "victim") == 2
    assert ledger.count("end", "victim") == 1
    ended = ledger.ends()
    assert all(ended[f"bystander-{i}"] >= 1 for i in range(20))  # none lost


def test_sigterm_lets_short_jobs_finish_and_releases_long_ones(
    app: errands.App, workers: Workers, ledger: Ledger
) -> None:
    short, long = app.enqueue_many(
        [sysapp.sleeper.call("short", 1.0), sysapp.sleeper.call("long", 60)]
    )
    worker = workers.start("--pool", "thread", "--concurrency", "2", "--grace", "3", lease=30)
    ledger.wait_for("start", "short", within=WITHIN)
    ledger.wait_for("start", "long", within=WITHIN)
    worker.send_signal(signal.SIGTERM)

    assert worker.wait(timeout=20) == 0
    assert short.refresh().state is JobState.COMPLETED
    released = long.refresh()
    # Released at once, not left to its 30 s lease: claimable now and charged nothing.
    assert released.state is JobState.AVAILABLE
    assert (released.failures, released.crashes) == (0, 0)
    assert ledger.count("end", "long") == 0


def test_second_sigterm_skips_the_grace(app: errands.App, workers: Workers, ledger: Ledger) -> None:
    [long] = app.enqueue_many([sysapp.sleeper.call("long", 60)])
    worker = workers.start("--pool", "thread", "--grace", "60", lease=30)
    ledger.wait_for("start", "long", within=WITHIN)
    worker.send_signal(signal.SIGTERM)
    # Two signals sent back to back can merge into one in the kernel: wait for the first.
    workers.wait_log(0, "draining", WITHIN)
    worker.send_signal(signal.SIGTERM)

    assert worker.wait(timeout=20) == 0
    assert long.refresh().state is JobState.AVAILABLE


def test_a_process_pool_child_killed_mid_job_is_replaced_and_the_job_retried(
    app: errands.App, workers: Workers, ledger: Ledger
) -> None:
    [handle] = app.enqueue_many([sysapp.cpu_sleeper_once.call("victim", 30)])
    worker = workers.start("--pool", "process", "--processes", "2")
    ledger.wait_for("start", "victim", within=WITHIN)
    [child_pid] = ledger.pids("start", "victim")
    signal_child(child_pid)

    assert handle.result(timeout=WITHIN) == "victim"
    job = handle.refresh()
    assert job.crashes == 1
    assert job.errors[0].kind is errands.ErrorKind.SIGNAL
    assert "SIGKILL" in job.errors[0].message
    second_pid = ledger.pids("start", "victim")[1]
    assert second_pid != child_pid  # ran in a new or another child
    assert worker.poll() is None  # the worker itself lived on


def signal_child(pid: int) -> None:
    import os

    os.kill(pid, signal.SIGKILL)


WITHIN_LONG = timedelta(seconds=60)
