"""Skewed worker clocks steal nothing: the SQLite broker keeps its own (the system's) time.

Two workers serve `sysapp:skewed_app`, an App whose clock is a SkewedClock: one 60 s ahead, one
60 s behind. If leases were stamped with a worker's clock, the one ahead would find every lease
of the one behind expired and rescue it mid-run. In a fault-free run of 300 jobs on 2 s leases:
no job starts twice, every job completes on its first attempt, lost 0.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta

import errands
from tests.system import sysapp
from tests.system.chaos.conftest import ChaosWorkers, run_timetable, seed
from tests.system.chaos.ledger import TimedLedger

LEASE = 2.0
JOBS = 300


def test_workers_with_clocks_skewed_both_ways_never_run_a_job_twice(
    app: errands.App, chaos_workers: ChaosWorkers, chaos_ledger: TimedLedger
) -> None:
    began = time.monotonic()
    skews = {"ahead": 60, "behind": -60}
    workers = {
        name: chaos_workers.launch(
            "--pool",
            "thread",
            "--concurrency",
            "8",
            "--queues",
            f"default,{name}",
            lease=LEASE,
            env={"ERRANDS_TEST_CLOCK_SKEW": str(skew)},
            target="tests.system.sysapp:skewed_app",
        )
        for name, skew in skews.items()
    }
    for one in workers.values():
        chaos_workers.wait_ready(one)
    # Each worker reports the skew it runs with (its own queue reaches only it).
    offsets = app.enqueue_many(
        sysapp.chaos_clock_offsetter.options(queue=name).call() for name in skews
    )
    assert [h.result(timeout=30) for h in offsets] == list(skews.values())

    rng = random.Random(seed())
    # Streamed over 3 s (several leases, ten rescue passes per worker), so a lease stamped with
    # the wrong clock would be rescued mid-run.
    acknowledged = run_timetable(
        app, lambda key: sysapp.chaos_sleeper.call(key, rng.uniform(0.005, 0.05)), JOBS, 100, []
    )
    report, jobs, codes = chaos_workers.finish(
        "skewed clocks (+60 s, -60 s)",
        app,
        chaos_ledger,
        acknowledged,
        within=timedelta(seconds=60),
        began=began,
    ).astuple()
    print(f"\n{report}")
    report.check()
    assert report.duplicated == 0
    assert all(job.attempt == 1 and not job.errors for job in jobs)
    assert set(codes.values()) == {0}
    for one in workers.values():
        log = (chaos_workers.tmp_path / f"worker-{one.index}.log").read_text()
        assert "rescued" not in log
        assert "was lost" not in log
