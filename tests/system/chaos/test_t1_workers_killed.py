"""T1, workers killed: real worker processes SIGKILLed at random times while jobs stream in.

Each killed worker is restarted at once. In the process-pool variant every other kill hits a
child that is running a job (found by its pid in the ledger) instead of the worker. The checker
(checker.py) then proves: lost 0; every duplicate run tied to a kill that cut its earlier run
short; the worst recovery latency (kill -> next start) within lease + rescue interval + 1 s;
nothing left running or waiting; `PRAGMA integrity_check` ok; survivors exit 0 on SIGTERM.

Quick tier: runs by default (a few hundred jobs, 5 kills per pool). Full tier (10,000 jobs of
5-50 ms, 4 workers, 50 kills) is marked slow; its reports are the figures of the issue note:

    pytest tests/system/chaos -k t1 --run-slow -m slow -s     # or: python benchmarks/chaos.py

Producer and killer share one timetable (a batch enqueued every 50 ms, kills at seeded random
instants; ERRANDS_CHAOS_SEED replays a run), so the offered load stays below what the workers
sustain and a rescued job is not queued behind a backlog: the latency measured is the lease
machinery's, not queueing.
"""

from __future__ import annotations

import functools
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

import pytest

import errands
from tests.system import sysapp
from tests.system.chaos.checker import Report
from tests.system.chaos.conftest import ChaosWorkers, Started, run_timetable, seed
from tests.system.chaos.ledger import TimedLedger

LEASE = 2.0
RESCUE_EVERY = 0.3


@dataclass(frozen=True)
class Tier:
    jobs: int
    workers: int
    kills: int
    rate: float  # jobs offered per second
    within: timedelta  # for every job to finish after the last enqueue


QUICK = Tier(jobs=300, workers=3, kills=5, rate=100, within=timedelta(seconds=60))
FULL = Tier(jobs=10_000, workers=4, kills=50, rate=150, within=timedelta(seconds=600))

POOLS = {
    "thread": (sysapp.chaos_sleeper, ("--pool", "thread", "--concurrency", "8")),
    "process": (sysapp.chaos_sleeper, ("--pool", "process", "--processes", "3")),
    "async": (sysapp.chaos_async_sleeper, ("--pool", "async", "--concurrency", "16")),
}


def run_t1(
    name: str,
    pool: str,
    tier: Tier,
    app: errands.App,
    workers: ChaosWorkers,
    ledger: TimedLedger,
    seed: int,
) -> Report:
    rng = random.Random(seed)
    task, args = POOLS[pool]
    began = time.monotonic()
    for one in [workers.launch(*args, lease=LEASE) for _ in range(tier.workers)]:
        workers.wait_ready(one)

    window = tier.jobs / tier.rate
    kills = [
        (rng.uniform(0.2, window), functools.partial(strike, pool, n, rng, workers, ledger, args))
        for n in range(tier.kills)
    ]
    acknowledged = run_timetable(
        app, lambda key: task.call(key, rng.uniform(0.005, 0.05)), tier.jobs, tier.rate, kills
    )

    report, _, codes = workers.finish(
        name,
        app,
        ledger,
        acknowledged,
        within=tier.within,
        began=began,
        bound=LEASE + RESCUE_EVERY + 1.0,
    ).astuple()
    report.notes.append(
        f"seed {seed}; {len(workers.started)} worker processes; "
        f"exit codes of the survivors {dict(Counter(codes.values()))}"
    )
    print(f"\n{report}")
    assert all(code == 0 for code in codes.values()), codes
    return report


def strike(
    pool: str,
    n: int,
    rng: random.Random,
    workers: ChaosWorkers,
    ledger: TimedLedger,
    args: tuple[str, ...],
) -> None:
    """One kill: a process-pool child running a job (every other kill), else a whole worker,
    which is restarted at once."""
    live = workers.live()
    if pool == "process" and n % 2 == 0:
        ledger.refresh()
        tags = {w.tag: w for w in live}
        running = [r for r in ledger.open_runs() if r.tag in tags]
        rng.shuffle(running)
        for run in running:
            if workers.kill_child(tags[run.tag], run.pid) is not None:
                return
    # Any live worker, but rather one with a job running: a kill between jobs proves little.
    ledger.refresh()
    busy = {r.tag for r in ledger.open_runs()}
    victim: Started = rng.choice([w for w in live if w.tag in busy] or live)
    workers.kill_worker(victim)
    workers.launch(*args, lease=LEASE)


@pytest.fixture
def chaos_env() -> dict[str, str]:
    return {"ERRANDS_EXTEND_EVERY": "0.3", "ERRANDS_RESCUE_EVERY": str(RESCUE_EVERY)}


@pytest.mark.parametrize("pool", list(POOLS))
def test_t1_quick(
    pool: str,
    app: errands.App,
    chaos_workers: ChaosWorkers,
    chaos_ledger: TimedLedger,
) -> None:
    report = run_t1(
        f"T1 quick, {pool} pool",
        pool,
        QUICK,
        app,
        chaos_workers,
        chaos_ledger,
        seed(),
    )
    report.check()
    assert report.interruptions.total() == QUICK.kills
    assert report.latencies, "no kill cut a job short: the run proved nothing"


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("pool", list(POOLS))
def test_t1_full(
    pool: str,
    app: errands.App,
    chaos_workers: ChaosWorkers,
    chaos_ledger: TimedLedger,
) -> None:
    report = run_t1(
        f"T1 full, {pool} pool",
        pool,
        FULL,
        app,
        chaos_workers,
        chaos_ledger,
        seed(),
    )
    report.check()
    assert report.interruptions.total() == FULL.kills


def test_t1_a_rescued_job_is_not_queued_behind_a_backlog(
    app: errands.App, chaos_workers: ChaosWorkers, chaos_ledger: TimedLedger
) -> None:
    """2,000 jobs of 50 ms enqueued at once take 3 workers of 8 slots at least 4.2 s; a job of
    a worker killed at the start must still run again within lease + interval + 1 s (3.3 s)."""
    args = POOLS["thread"][1]
    first = [chaos_workers.launch(*args, lease=LEASE) for _ in range(3)]
    for one in first:
        chaos_workers.wait_ready(one)
    keys = [f"j{i:05d}" for i in range(2000)]
    handles = app.enqueue_many(sysapp.chaos_sleeper.call(key, 0.05) for key in keys)
    chaos_ledger.wait_until(
        "the first worker running jobs",
        lambda: any(r.tag == first[0].tag for r in chaos_ledger.open_runs()),
        timedelta(seconds=30),
    )
    chaos_workers.kill_worker(first[0])
    chaos_workers.launch(*args, lease=LEASE)
    report = chaos_workers.finish(
        "T1 backlog: 2,000 jobs enqueued at once, one kill",
        app,
        chaos_ledger,
        dict(zip(keys, [h.id for h in handles], strict=True)),
        within=timedelta(seconds=120),
    ).report
    print(f"\n{report}")
    report.check()  # everything but the latency holds
    assert report.latencies, "the kill cut no job short"
    bound = LEASE + RESCUE_EVERY + 1.0
    assert report.max_latency <= bound, f"recovery {report.max_latency:.2f}s > {bound:.2f}s"
