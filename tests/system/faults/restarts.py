"""The broker restart experiment, shared by test_redis_restart.py and test_postgres_restart.py.

Two real `errands worker` processes run short bulk jobs while a producer thread enqueues one
job every 10 ms, as an application would; each time a share of the bulk jobs has ended, the
test's own server is taken down and, once a producer has met it down, started again. What
differs between brokers (how the server is killed and brought back, how long it stays down, the
tiers and the checks on top) stays in each test; this module runs the experiment and gathers
what the checks read.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Protocol

import errands
from errands import JobState
from errands.job import Job, JobId
from tests.system import sysapp
from tests.system.chaos.checker import fetch_jobs, wait_terminal
from tests.system.chaos.conftest import ChaosWorkers, Started
from tests.system.chaos.ledger import Run

RESUME_BOUND = 3.0  # seconds from the server answering again to each worker's next job start
PRODUCE_EVERY = 0.01  # seconds between the producer thread's enqueues
JOB_SECONDS = 0.005
BATCH = 500
UP = timedelta(seconds=30)


@dataclass(frozen=True)
class Attempt:
    """One enqueue of the producer thread: its key, when it ran and how it ended."""

    key: str
    began: float  # time.monotonic()
    ended: float
    outcome: str  # "ok" or the exception's type name
    job_id: JobId | None = None


@dataclass
class Outage:
    """One kill and restart of the server."""

    killed: float  # time.monotonic() once the killed process was reaped
    restarting: float  # time.monotonic() just before the new process was started
    back: float  # time.monotonic() when it answered again
    back_wall: float  # the same instant by time.time(), to compare with the ledger's times
    resumed: dict[str, float] = field(default_factory=dict)  # worker tag -> seconds to resume

    @property
    def down(self) -> float:
        """Seconds the server could not be reached."""
        return self.back - self.killed


class Producer:
    """A thread enqueueing one job every PRODUCE_EVERY seconds through its own App, recording
    each attempt, until stopped."""

    def __init__(self, url: str) -> None:
        self.app = errands.App(url)
        self.attempts: list[Attempt] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the producer thread hangs in an enqueue"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self.app.close()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            key = f"p{n:05d}"
            call = sysapp.chaos_sleeper.options(idempotency_key=key).call(key, JOB_SECONDS)
            began = time.monotonic()
            try:
                [handle] = self.app.enqueue_many([call])
            except Exception as error:  # every kind is recorded; the test says which may occur
                attempt = Attempt(key, began, time.monotonic(), type(error).__name__)
            else:
                attempt = Attempt(key, began, time.monotonic(), "ok", handle.id)
            with self._lock:
                self.attempts.append(attempt)
            n += 1
            self._stop.wait(PRODUCE_EVERY)  # the producer's pace, not a wait for a state

    def unavailable_since(self, since: float) -> bool:
        """An attempt begun at or after `since` raised BrokerUnavailable."""
        with self._lock:
            return any(a.began >= since and a.outcome == "BrokerUnavailable" for a in self.attempts)


class Plan(Protocol):
    """A test's tier, as far as the run goes."""

    @property
    def jobs(self) -> int: ...  # bulk jobs, enqueued before the workers start
    @property
    def restarts(self) -> int: ...
    @property
    def within(self) -> timedelta: ...  # for every job to end after the last restart


@dataclass(frozen=True)
class Scene:
    """What one restart acts on and watches: the workers, the producer, and the run's size (the
    restart's turn comes when its share of the bulk jobs has ended)."""

    workers: ChaosWorkers
    pair: list[Started]
    producer: Producer
    jobs: int
    restarts: int


#: Restart number k of the run in the scene (a test's own, for its server): see `restart`.
RestartOnce = Callable[[Scene, int], Outage]


def restart(
    scene: Scene,
    k: int,
    kill: Callable[[], object],
    start: Callable[[], object],
    *,
    down: tuple[float, float],
) -> Outage:
    """Restart number `k`: once (k + 1) / (restarts + 1) of the bulk jobs ended, `kill` the
    server (it returns once the process is reaped); when `down` seconds (at least, at most) have
    passed and a producer's enqueue has failed, `start` it again (it returns once the server
    answers), and measure how long each worker takes to start a job after that."""
    workers, pair, ledger = scene.workers, scene.pair, scene.workers.chaos
    share = (k + 1) * scene.jobs // (scene.restarts + 1)
    ledger.wait_until(f"{share} jobs ended", lambda: ledger.count("end") >= share, UP)
    assert_alive(workers, pair)

    kill()
    killed = time.monotonic()  # after the reap: from here on, nothing can reach the server
    # Down for the planned time and until the producer has met it down; past the most it comes
    # back anyway and the missing BrokerUnavailable fails the test after the run.
    at_least, deadline = down[0], killed + down[1]
    while time.monotonic() < deadline and not (
        time.monotonic() - killed >= at_least and scene.producer.unavailable_since(killed)
    ):
        time.sleep(0.01)  # a thread's progress and a span of time: nothing to await
    assert_alive(workers, pair)
    restarting = time.monotonic()
    start()
    outage = Outage(killed, restarting, time.monotonic(), time.time())
    seen = len(ledger.events)  # read before the kill: every later start is past this index

    def resumed() -> bool:
        for event in ledger.events[seen:]:
            if event.event == "start" and event.t > outage.back_wall:
                outage.resumed.setdefault(event.tag, event.t - outage.back_wall)
        return len(outage.resumed) == len(pair)

    ledger.wait_until(f"both workers start a job after restart {k}", resumed, UP)
    return outage


@dataclass(frozen=True)
class RestartRun:
    """What a run through restarts left: the checks and the summary line read it."""

    acknowledged: dict[str, JobId]  # key -> job id, for every enqueue that returned
    produced: dict[str, JobId]  # the part of it the producer thread got, first time round
    jobs: list[Job]
    runs: dict[str, list[Run]]  # key -> its runs in the timed ledger
    attempts: list[Attempt]  # the producer thread's enqueues
    outages: list[Outage]
    pair: list[Started]
    codes: dict[str, int | None]  # worker tag -> exit code on SIGTERM
    stored_anyway: int  # failed enqueues that had been stored all the same

    @cached_property
    def states(self) -> Counter[str]:
        """The acknowledged jobs by stored state ("missing" for one not found)."""
        by_id = {job.id: job for job in self.jobs}
        return Counter(
            str(by_id[i].state) if i in by_id else "missing" for i in self.acknowledged.values()
        )

    @cached_property
    def lost(self) -> list[str]:
        """Keys acknowledged that did not end `completed` with a finished run in the ledger."""
        by_id = {job.id: job for job in self.jobs}
        return [
            key
            for key, job_id in self.acknowledged.items()
            if job_id not in by_id
            or by_id[job_id].state is not JobState.COMPLETED
            or not any(run.end is not None for run in self.runs.get(key, []))
        ]

    @cached_property
    def twice(self) -> list[str]:
        """Keys the ledger saw start more than once."""
        return sorted(key for key in self.acknowledged if len(self.runs.get(key, [])) > 1)

    @cached_property
    def rescued(self) -> list[Job]:
        """A claim the server applied whose reply the kill cut off: no worker knows of it, so it
        waits out its lease and is rescued, counting a crash. Reported, not a loss."""
        return [job for job in self.jobs if job.crashes or job.attempt > 1]

    @cached_property
    def errors(self) -> Counter[str]:
        """How many enqueues of the producer thread raised, by exception type."""
        return Counter(a.outcome for a in self.attempts if a.outcome != "ok")

    def outages_summary(self) -> str:
        """The summary line's part on the outages: how long each lasted, and how soon each
        worker started a job after it."""
        slowest = max((s for o in self.outages for s in o.resumed.values()), default=0.0)
        return (
            "outages "
            + ", ".join(f"{o.down:.2f}s" for o in self.outages)
            + f"; resume after restart max {slowest:.2f}s "
            + str([{tag: round(s, 2) for tag, s in o.resumed.items()} for o in self.outages])
        )

    def dead(self, outage: Outage) -> list[Attempt]:
        """The enqueues begun and ended while no server process existed: only a refusal is
        true for them."""
        return [
            a for a in self.attempts if outage.killed <= a.began and a.ended <= outage.restarting
        ]

    def assert_nothing_lost(self) -> None:
        """Every acknowledged job completed and ran to its end; an enqueue raised nothing but
        BrokerUnavailable."""
        lost, errors = self.lost, self.errors
        assert lost == [], f"{len(lost)} jobs lost, e.g. {lost[:5]}"
        assert self.states == Counter({"completed": len(self.acknowledged)})
        assert set(errors) <= {"BrokerUnavailable"}, f"enqueue raised other errors: {errors}"

    def assert_refused_while_down(self) -> None:
        """Each outage refused an enqueue at least once and never acknowledged one it could not
        store, and both workers started a job after it."""
        for k, outage in enumerate(self.outages):
            dead = self.dead(outage)
            refused = [a for a in dead if a.outcome == "BrokerUnavailable"]
            assert refused, f"outage {k}: no enqueue raised BrokerUnavailable: {dead}"
            assert not [a for a in dead if a.outcome == "ok"], f"outage {k}: a false success"
            assert set(outage.resumed) == {one.tag for one in self.pair}

    def assert_stopped_cleanly(self) -> None:
        """Each worker exited 0 on SIGTERM at the end."""
        codes = self.codes
        assert codes == {one.tag: 0 for one in self.pair}, f"exit codes on SIGTERM: {codes}"


def run_through_restarts(
    url: str, workers: ChaosWorkers, plan: Plan, *, lease: float, restart_once: RestartOnce
) -> RestartRun:
    """Enqueue the plan's bulk jobs, start two thread-pool workers (`lease` seconds) and the
    producer thread, restart the server the plan's number of times, then await every job ending
    and stop the workers with SIGTERM. Checks no worker exited on the way; the rest is the
    test's."""
    ledger = workers.chaos
    app = errands.App(url)
    producer = Producer(url)
    try:
        acknowledged = enqueue_all(app, plan.jobs)
        pair = [workers.launch("--pool", "thread", "--concurrency", "8", lease=lease)]
        pair.append(workers.launch("--pool", "thread", "--concurrency", "8", lease=lease))
        for one in pair:
            workers.wait_ready(one)
        producer.start()
        scene = Scene(workers, pair, producer, plan.jobs, plan.restarts)
        outages = [restart_once(scene, k) for k in range(plan.restarts)]
        producer.stop()
        assert_alive(workers, pair)

        attempts = producer.attempts
        produced = {a.key: a.job_id for a in attempts if a.outcome == "ok" and a.job_id}
        acknowledged.update(produced)
        # A failed enqueue may or may not have been stored: sent again with its idempotency key,
        # it comes back as a duplicate if it was (and runs either way).
        failed = [a for a in attempts if a.outcome != "ok"]
        stored_anyway = 0
        for attempt in failed:
            call = sysapp.chaos_sleeper.options(idempotency_key=attempt.key)
            [handle] = app.enqueue_many([call.call(attempt.key, JOB_SECONDS)])
            stored_anyway += handle.duplicate
            acknowledged[attempt.key] = handle.id

        ids = list(acknowledged.values())
        wait_terminal(app, ids, plan.within)
        assert_alive(workers, pair)
        fetched = fetch_jobs(app, ids)
        codes = workers.stop_gracefully()
    finally:
        producer.close()
        app.close()

    ledger.refresh()
    return RestartRun(
        acknowledged=acknowledged,
        produced=produced,
        jobs=fetched,
        runs=ledger.all_runs(),
        attempts=attempts,
        outages=outages,
        pair=pair,
        codes=codes,
        stored_anyway=stored_anyway,
    )


def enqueue_all(app: errands.App, jobs: int) -> dict[str, JobId]:
    """Enqueue the bulk jobs j00000... in batches; returns key -> job id."""
    acknowledged: dict[str, JobId] = {}
    for start in range(0, jobs, BATCH):
        keys = [f"j{i:05d}" for i in range(start, min(jobs, start + BATCH))]
        handles = app.enqueue_many([sysapp.chaos_sleeper.call(key, JOB_SECONDS) for key in keys])
        acknowledged.update(zip(keys, (h.id for h in handles), strict=True))
    return acknowledged


def assert_alive(workers: ChaosWorkers, pair: list[Started]) -> None:
    """No worker exited (nor re-executed itself)."""
    for one in pair:
        log = (workers.tmp_path / f"worker-{one.index}.log").read_text(errors="replace")
        assert one.alive, f"worker {one.tag} exited with {one.proc.returncode}:\n{log[-3000:]}"
        assert "restarting the worker" not in log
