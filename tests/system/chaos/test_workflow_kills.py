"""Workflows under SIGKILL: chords and chains of real worker processes killed mid-run.

The broker releases a chord's callback, or a chain's next step, in the write that stores the
last dependency's outcome, so a kill can delay a step (or make it run again, as any job) but
never lose, skip or reorder one, nor release one twice. The checker (checker.py) proves lost
0 and every duplicate run tied to a kill; on top of it, every callback ran after all its
members had ended and received every member's result, and every chain's last step received
the whole trail, in order.

Quick tier (CI): 20 chords of 5 and 20 chains of 5, 3 kills, per broker. Full tier (200 and
200, 20 kills) is marked slow:

    pytest tests/system/chaos/test_workflow_kills.py --run-slow -m slow -s
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import timedelta

import pytest

import errands
from errands import codec
from errands.job import Job, JobId
from tests.system.chaos import wfapp
from tests.system.chaos.checker import Report
from tests.system.chaos.conftest import ChaosWorkers, Started, seed
from tests.system.chaos.ledger import TimedLedger

LEASE = 2.0
RESCUE_EVERY = 0.3
STEPS = 5  # per chain, and members per chord
ARGS = ("--pool", "thread", "--concurrency", "8")
TARGET = "tests.system.chaos.wfapp:app"


@dataclass(frozen=True)
class Tier:
    chords: int
    chains: int
    kills: int
    window: float  # seconds over which workflows are started and workers killed
    within: timedelta


QUICK = Tier(chords=20, chains=20, kills=3, window=2.5, within=timedelta(seconds=60))
FULL = Tier(chords=200, chains=200, kills=20, window=30.0, within=timedelta(seconds=600))


@dataclass
class Launched:
    """The workflows started: ledger key -> job id, and each workflow's keys in order."""

    keys: dict[str, JobId]
    chords: list[list[str]]  # member keys, then the callback's
    chains: list[list[str]]


def run(tier: Tier, app: errands.App, workers: ChaosWorkers, ledger: TimedLedger) -> Report:
    rng = random.Random(run_seed := seed())
    step, member, gather = wfapp.register(app)
    began = time.monotonic()
    for one in [workers.launch(*ARGS, lease=LEASE, target=TARGET) for _ in range(3)]:
        workers.wait_ready(one)
    started = Launched({}, [], [])
    batches = max(tier.chords, tier.chains)
    kills = sorted(rng.uniform(0.3, tier.window) for _ in range(tier.kills))
    t0 = time.monotonic()
    for n in range(batches):
        # A timetable in real time: the load and the kills are the experiment.
        time.sleep(max(0.0, n * tier.window / batches - (time.monotonic() - t0)))
        if n < tier.chords:
            keys = [f"c{n:03d}m{i}" for i in range(STEPS)] + [f"c{n:03d}cb"]
            shape = errands.chord(
                errands.group(*[member.call(k, rng.uniform(0.01, 0.05)) for k in keys[:-1]]),
                gather.call(keys[-1]),
            )
            remember(started, started.chords, keys, shape.enqueue())
        if n < tier.chains:
            keys = [f"s{n:03d}k{i}" for i in range(STEPS)]
            first = step.call([], keys[0], rng.uniform(0.01, 0.05))
            rest = [step.call(k, rng.uniform(0.01, 0.05)) for k in keys[1:]]
            remember(started, started.chains, keys, errands.chain(first, *rest).enqueue())
        while kills and time.monotonic() - t0 >= kills[0]:
            kills.pop(0)
            strike(rng, workers, ledger)
    for _ in kills:  # any kill the timetable did not reach
        strike(rng, workers, ledger)

    finished = workers.finish(
        "workflows under SIGKILL",
        app,
        ledger,
        started.keys,
        within=tier.within,
        began=began,
        bound=LEASE + RESCUE_EVERY + 1.0,
    )
    report = finished.report
    by_id = {job.id: job for job in finished.jobs}
    by_key = {key: by_id[job_id] for key, job_id in started.keys.items()}
    once, in_order = check_workflows(started, by_key, ledger)
    report.notes.append(
        f"seed {run_seed}; {tier.chords} chords and {tier.chains} chains of {STEPS}; "
        f"callbacks released once, after every member, with every result: {once}/{tier.chords}; "
        f"chains whole and in order: {in_order}/{tier.chains}"
    )
    print(f"\n{report}")
    assert (once, in_order) == (tier.chords, tier.chains), report
    return report


def remember(
    started: Launched, into: list[list[str]], keys: list[str], handle: errands.WorkflowHandle
) -> None:
    into.append(keys)
    started.keys.update(zip(keys, (job.id for job in handle.jobs), strict=True))


def check_workflows(
    started: Launched, by_key: dict[str, Job], ledger: TimedLedger
) -> tuple[int, int]:
    """How many chords had their callback start after every member's last run ended, and
    return every member's key; how many chains returned the whole trail, each step starting
    after the one before it ended."""
    ledger.refresh()

    def after_all(key: str, before: list[str]) -> bool:
        first = ledger.runs(key)[0].start
        return all(first >= max(r.end or 0.0 for r in ledger.runs(k)) for k in before)

    def result(key: str) -> object:
        job = by_key[key]
        return None if job.result is None else codec.loads(job.result)

    once = sum(
        result(keys[-1]) == keys[:-1] and after_all(keys[-1], keys[:-1]) for keys in started.chords
    )
    in_order = sum(
        result(keys[-1]) == keys
        and all(after_all(keys[i], [keys[i - 1]]) for i in range(1, len(keys)))
        for keys in started.chains
    )
    return once, in_order


def strike(rng: random.Random, workers: ChaosWorkers, ledger: TimedLedger) -> None:
    """SIGKILL a worker, rather one running a step, and start another at once."""
    ledger.refresh()
    live = workers.live()
    busy = {r.tag for r in ledger.open_runs()}
    victim: Started = rng.choice([w for w in live if w.tag in busy] or live)
    workers.kill_worker(victim)
    workers.launch(*ARGS, lease=LEASE, target=TARGET)


@pytest.fixture
def chaos_env() -> dict[str, str]:
    return {"ERRANDS_EXTEND_EVERY": "0.3", "ERRANDS_RESCUE_EVERY": str(RESCUE_EVERY)}


def test_workflows_survive_worker_kills(
    app: errands.App, chaos_workers: ChaosWorkers, chaos_ledger: TimedLedger
) -> None:
    report = run(QUICK, app, chaos_workers, chaos_ledger)
    report.check()
    assert report.interruptions.total() == QUICK.kills


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_workflows_survive_worker_kills_full(
    app: errands.App, chaos_workers: ChaosWorkers, chaos_ledger: TimedLedger
) -> None:
    report = run(FULL, app, chaos_workers, chaos_ledger)
    report.check()
    assert report.interruptions.total() == FULL.kills
