"""Poison-pill cap (G5): a job that kills its process-pool child (os._exit, SIGKILL to itself,
os.abort(), memory past the hard limit) is dead-lettered `crashed` after exactly max_crashes
attempts, each with its crash reason; the worker lives on, replaces the child within 1 s and
keeps running normal jobs."""

from __future__ import annotations

import statistics
from datetime import timedelta

import pytest

import errands
from errands import ErrorKind, FailReason, JobState
from errands.task import Call
from tests.system.faults import faultapp
from tests.system.faults.conftest import Processes, Store, wait_until, worker_alive
from tests.system.faults.trail import Trail

pytestmark = pytest.mark.brokers("sqlite", reason="waits on the SQLite file through sqlite3")

MAX_CRASHES = 3  # the default (Settings.max_crashes)
HARD_MB = 200
WITHIN = timedelta(seconds=60)
# (task call maker, error kind, error type, message fragment)
POISON = {
    "exit": (lambda k: faultapp.exit_child.call(k, 3), ErrorKind.EXIT, "ChildExited", "with 3"),
    "kill": (lambda k: faultapp.kill_self.call(k), ErrorKind.SIGNAL, "SIGKILL", "SIGKILL"),
    "abort": (lambda k: faultapp.abort_self.call(k), ErrorKind.SIGNAL, "SIGABRT", "SIGABRT"),
    "memory": (
        lambda k: faultapp.hog_memory.call(k, 20, 2000),
        ErrorKind.MEMORY,
        "MemoryLimitExceeded",
        "over the hard memory limit",
    ),
}


def test_quick_one_poison_job_of_each_kind(
    procs: Processes, store: Store, producer: errands.App, trail: Trail
) -> None:
    check_poison(procs, store, producer, trail, each=1, normal=5, processes=1)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_full_five_poison_jobs_of_each_kind_two_children(
    procs: Processes, store: Store, producer: errands.App, trail: Trail
) -> None:
    check_poison(procs, store, producer, trail, each=5, normal=100, processes=2)


def normal_call(key: str) -> Call:
    # Below the poison's priority, so every crash (and its retry, due at once) is followed by
    # a queued job: the next start in the trail is the replacement child's first job.
    return faultapp.sleeper.options(priority=-1).call(key, 0.02)


def check_poison(
    procs: Processes,
    store: Store,
    producer: errands.App,
    trail: Trail,
    *,
    each: int,
    normal: int,
    processes: int,
) -> None:
    worker = procs.worker(
        "--pool", "process", "--processes", str(processes), "--max-memory-hard", str(HARD_MB)
    )
    poison_keys = [f"{kind}-{i}" for i in range(each) for kind in POISON]
    calls = [POISON[key.split("-")[0]][0](key) for key in poison_keys]
    handles = producer.enqueue_many(calls + [normal_call(f"n-{i}") for i in range(normal)])

    def settled() -> bool:
        worker_alive(procs, worker)
        return store.unfinished() == 0

    wait_until(settled, within=WITHIN, what="poison and normal jobs terminal")
    worker_alive(procs, worker)

    for key, handle in zip(poison_keys, handles, strict=False):
        _, kind, error_type, fragment = POISON[key.split("-")[0]]
        job = handle.refresh()
        assert (job.state, job.fail_reason) == (JobState.FAILED, FailReason.CRASHED), key
        assert (job.attempt, job.crashes, job.failures) == (MAX_CRASHES, MAX_CRASHES, 0), key
        assert [(e.attempt, e.kind, e.type) for e in job.errors] == [
            (n, kind, error_type) for n in range(1, MAX_CRASHES + 1)
        ], key
        assert all(fragment in e.message for e in job.errors), job.errors
        assert len(trail.of("start", key)) == MAX_CRASHES  # no crash loop: exactly 3 runs
    for handle in handles[len(poison_keys) :]:
        assert handle.refresh().state is JobState.COMPLETED

    # The worker goes on: a job enqueued after all that poison runs and completes.
    [after] = producer.enqueue_many([faultapp.sleeper.call("after", 0.0)])
    assert after.result(timeout=WITHIN) == "after"
    worker_alive(procs, worker)

    gaps = replacement_gaps(trail, poison_keys, processes)
    crashes = len(poison_keys) * MAX_CRASHES
    assert len(gaps) == crashes
    print(
        f"\npoison: {len(poison_keys)} jobs x {MAX_CRASHES} crashes = {crashes} child deaths "
        f"({', '.join(POISON)}), {processes} child(ren); crash -> next job started in the "
        f"new child: median {statistics.median(gaps) * 1000:.0f} ms, "
        f"max {max(gaps) * 1000:.0f} ms; worker pid {worker.pid} alive throughout"
    )
    assert max(gaps) < 1.0


def replacement_gaps(trail: Trail, poison_keys: list[str], processes: int) -> list[float]:
    """Seconds from each child death to the first job start in a child born after it.

    A death's instant is the dying attempt's last trail line (the `start` of an instant
    death, the last `grow` of a memory hog). Each death brings exactly one new child, so the
    n-th death is paired with the n-th new child to start a job.
    """
    events = trail.events()
    poison = set(poison_keys)
    last: dict[int, float] = {}  # child pid -> its latest poison line (a child dies of one)
    for event in events:
        if event.key in poison:
            last[event.pid] = event.at
    deaths = sorted(last.values())
    first_start: dict[int, float] = {}
    for event in events:
        if event.event == "start":
            first_start.setdefault(event.pid, event.at)
    births = sorted(first_start.values())[processes:]  # the first children are the originals
    assert len(births) == len(deaths), (births, deaths)
    return [born - died for died, born in zip(deaths, births, strict=True)]
