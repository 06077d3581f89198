"""G3, the other half: a live job is never reclaimed, however long it runs.

The worker, not the task, extends the leases of its running jobs. Jobs running 10 times their
1 s lease, CPU-bound in the process pool (two children spinning, so the worker shares the two
cores with them) and blocking in a thread and in the async pool, each complete on their first
attempt with exactly one start, while a second, idle worker stands by to take any job whose
lease lapsed.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

import errands
from errands import JobState
from tests.system import sysapp
from tests.system.chaos.conftest import ChaosWorkers
from tests.system.chaos.ledger import TimedLedger

LEASE = 1.0
LENGTH = 10 * LEASE


@pytest.fixture
def chaos_env() -> dict[str, str]:
    # Four extend ticks per lease even at +20% jitter; a rescuer on every worker.
    return {"ERRANDS_EXTEND_EVERY": "0.2", "ERRANDS_RESCUE_EVERY": "0.3"}


def test_jobs_ten_times_their_lease_are_never_reclaimed(
    app: errands.App, chaos_workers: ChaosWorkers, chaos_ledger: TimedLedger
) -> None:
    args = ("--processes", "2", "--concurrency", "4")
    began = time.monotonic()
    runner = chaos_workers.launch(*args, lease=LEASE)
    chaos_workers.wait_ready(runner)
    calls = {
        "spin-1": sysapp.chaos_spinner.call("spin-1", LENGTH),
        "spin-2": sysapp.chaos_spinner.call("spin-2", LENGTH),
        "thread": sysapp.chaos_sleeper.call("thread", LENGTH),
        "async": sysapp.chaos_async_sleeper.call("async", LENGTH),
    }
    handles = app.enqueue_many(calls.values())
    chaos_ledger.wait_until(
        "all four jobs starting in the first worker",
        lambda: chaos_ledger.count("start") == 4,
        timedelta(seconds=30),
    )
    standby = chaos_workers.launch(*args, lease=LEASE)
    chaos_workers.wait_ready(standby)

    ids = [h.id for h in handles]
    report, jobs, codes = chaos_workers.finish(
        "long jobs, lease 1 s, 10 s each",
        app,
        chaos_ledger,
        dict(zip(calls, ids, strict=True)),
        within=timedelta(seconds=LENGTH + 30),
        began=began,
    ).astuple()
    print(f"\n{report}")
    report.check()
    assert codes == {runner.tag: 0, standby.tag: 0}
    for key, job in zip(calls, jobs, strict=True):
        assert job.state is JobState.COMPLETED, job
        assert (job.attempt, job.crashes, job.errors) == (1, 0, ()), job
        [run] = chaos_ledger.runs(key)
        assert run.tag == runner.tag
        assert run.end is not None
        assert run.end - run.start >= LENGTH - 0.1
    for index in (runner.index, standby.index):
        log = (chaos_workers.tmp_path / f"worker-{index}.log").read_text()
        assert "was lost" not in log
        assert "rescued" not in log
