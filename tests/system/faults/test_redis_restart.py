"""Broker restart: the Redis under a busy run is SIGKILLed and restarted again and again, and
nothing is lost.

A Redis of the test's own (tests/brokers/redis_servers.py: AOF with `appendfsync always`, on a
free port, never the shared one) serves two real `errands worker` processes running short jobs.
Each time a share of the jobs has ended, Redis is SIGKILLed and, once a producer has met it
down, started again on the same port and directory (it reloads its AOF). Meanwhile a producer
thread enqueues one job every 10 ms through `App.enqueue_many`, as an application would.

What a user checks:
- lost 0: every job whose enqueue returned ends `completed` and has a finished run in the
  ledger of starts and ends the tasks write (tests/system/chaos/ledger.py);
- each worker starts a job again within 3 s of Redis answering PING after each restart;
- an enqueue during an outage raises `errands.BrokerUnavailable` (at least one per outage) and
  nothing else, and never a false success: every enqueue that returned is stored and runs;
- no worker process exits, and each still stops cleanly (exit 0) on SIGTERM at the end.

A kill can cut off the reply to a claim Redis already applied (and fsynced): no worker knows
it holds those jobs, so they wait out their lease (5 s here) and are rescued, counting a crash.
That is a delay, not a loss; the run's summary line (pytest -s) says how many there were.

The default run is the full one, 5,000 jobs and 5 kills: about 10 s, so it needs no slow
mark. A soak tier (20,000 jobs, 20 kills, about 40 s) runs with `--run-slow`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

import errands
from errands import JobState
from errands.job import JobId
from tests.brokers.redis_servers import RedisServer
from tests.brokers.redis_servers import redis_server as redis_server
from tests.system import sysapp
from tests.system.chaos.checker import fetch_jobs, wait_terminal
from tests.system.chaos.conftest import ChaosWorkers, Started
from tests.system.chaos.ledger import TimedLedger
from tests.system.ledger import Ledger

#: Longer than any outage here, so no lease lapses while Redis is down: a restart alone must
#: not make a job run twice or count a crash.
LEASE = 5.0
RESUME_BOUND = 3.0  # seconds from Redis answering again to each worker's next job start
OUTAGE_MIN = 0.5  # seconds Redis stays down at least, so the outage is one a producer meets
OUTAGE_MAX = 10.0  # ... and at most, waiting for the producer's BrokerUnavailable
PRODUCE_EVERY = 0.01  # seconds between the producer thread's enqueues
JOB_SECONDS = 0.005
BATCH = 500
UP = timedelta(seconds=30)


@dataclass(frozen=True)
class Tier:
    jobs: int
    kills: int
    within: timedelta  # for every job to end after the last restart


FULL = Tier(jobs=5_000, kills=5, within=timedelta(seconds=60))
SOAK = Tier(jobs=20_000, kills=20, within=timedelta(seconds=180))


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
    """One kill and restart of Redis."""

    killed: float  # time.monotonic() once the SIGKILLed process was reaped
    restarting: float  # time.monotonic() just before the new process was started
    back: float  # time.monotonic() when it answered PING again
    back_wall: float  # the same instant by time.time(), to compare with the ledger's times
    resumed: dict[str, float] = field(default_factory=dict)  # worker tag -> seconds to resume

    @property
    def down(self) -> float:
        """Seconds Redis could not be reached."""
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


@pytest.fixture
def workers(tmp_path: Path, redis_server: RedisServer) -> Iterator[ChaosWorkers]:
    """Worker processes on the test's own Redis, SIGKILLed at the end."""
    pool = ChaosWorkers(
        tmp_path,
        redis_server.url(prefix="restart"),
        Ledger(tmp_path / "ledger.txt"),
        TimedLedger(tmp_path / "chaos-ledger.txt"),
        env={},
    )
    yield pool
    pool.stop_all()


def test_redis_killed_5_times_during_5000_jobs_loses_nothing(
    redis_server: RedisServer, workers: ChaosWorkers
) -> None:
    check_restarts(redis_server, workers, FULL)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_soak_redis_killed_20_times_during_20000_jobs_loses_nothing(
    redis_server: RedisServer, workers: ChaosWorkers
) -> None:
    check_restarts(redis_server, workers, SOAK)


def check_restarts(server: RedisServer, workers: ChaosWorkers, tier: Tier) -> None:
    began = time.monotonic()
    url = server.url(prefix="restart")
    ledger = workers.chaos
    app = errands.App(url)
    producer = Producer(url)
    try:
        acknowledged = enqueue_all(app, tier.jobs)
        pair = [workers.launch("--pool", "thread", "--concurrency", "8", lease=LEASE)]
        pair.append(workers.launch("--pool", "thread", "--concurrency", "8", lease=LEASE))
        for one in pair:
            workers.wait_ready(one)
        producer.start()
        outages = [
            kill_and_restart(server, workers, pair, producer, tier, k) for k in range(tier.kills)
        ]
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
        wait_terminal(app, ids, tier.within)
        assert_alive(workers, pair)
        jobs = fetch_jobs(app, ids)
        codes = workers.stop_gracefully()
    finally:
        producer.close()

    ledger.refresh()
    runs = ledger.all_runs()
    by_id = {job.id: job for job in jobs}
    states = Counter(str(by_id[i].state) if i in by_id else "missing" for i in ids)
    lost = [
        key
        for key, job_id in acknowledged.items()
        if job_id not in by_id
        or by_id[job_id].state is not JobState.COMPLETED
        or not any(run.end is not None for run in runs.get(key, []))
    ]
    twice = sorted(key for key in acknowledged if len(runs.get(key, [])) > 1)
    # A claim Redis applied (and fsynced) whose reply the kill cut off: no worker knows of it,
    # so it waits out its lease and is rescued, counting a crash. Reported, not a loss.
    rescued = [job for job in jobs if job.crashes or job.attempt > 1]
    errors = Counter(a.outcome for a in attempts if a.outcome != "ok")
    slowest = max((s for o in outages for s in o.resumed.values()), default=0.0)
    print(
        f"\nredis restart x{tier.kills}: {len(acknowledged)} jobs ({tier.jobs} bulk, "
        f"{len(produced)} acknowledged to the producer thread), states {dict(states)}, lost "
        f"{len(lost)}, ran twice {len(twice)}, rescued after a lease lapsed {len(rescued)}; "
        "outages "
        + ", ".join(f"{o.down:.2f}s" for o in outages)
        + f"; resume after restart max {slowest:.2f}s "
        + str([{tag: round(s, 2) for tag, s in o.resumed.items()} for o in outages])
        + f"; producer: {len(attempts)} enqueues, refused {dict(errors)}, "
        f"{stored_anyway} of the refused were stored anyway; "
        f"wall {time.monotonic() - began:.1f}s"
    )

    assert lost == [], f"{len(lost)} jobs lost, e.g. {lost[:5]}"
    assert states == Counter({"completed": len(acknowledged)})
    assert set(errors) <= {"BrokerUnavailable"}, f"enqueue raised other errors: {errors}"
    for k, outage in enumerate(outages):
        # Begun and ended while no Redis process existed: only a refusal is true.
        dead = [a for a in attempts if outage.killed <= a.began and a.ended <= outage.restarting]
        refused = [a for a in dead if a.outcome == "BrokerUnavailable"]
        assert refused, f"outage {k}: no enqueue raised BrokerUnavailable: {dead}"
        assert not [a for a in dead if a.outcome == "ok"], f"outage {k}: a false success"
        assert set(outage.resumed) == {one.tag for one in pair}
        late = {tag: s for tag, s in outage.resumed.items() if s > RESUME_BOUND}
        assert not late, f"outage {k}: workers resumed later than {RESUME_BOUND}s: {late}"
    assert codes == {one.tag: 0 for one in pair}, f"exit codes on SIGTERM: {codes}"


def enqueue_all(app: errands.App, jobs: int) -> dict[str, JobId]:
    """Enqueue the bulk jobs j00000... in batches; returns key -> job id."""
    acknowledged: dict[str, JobId] = {}
    for start in range(0, jobs, BATCH):
        keys = [f"j{i:05d}" for i in range(start, min(jobs, start + BATCH))]
        handles = app.enqueue_many([sysapp.chaos_sleeper.call(key, JOB_SECONDS) for key in keys])
        acknowledged.update(zip(keys, (h.id for h in handles), strict=True))
    return acknowledged


def kill_and_restart(
    server: RedisServer,
    workers: ChaosWorkers,
    pair: list[Started],
    producer: Producer,
    tier: Tier,
    k: int,
) -> Outage:
    """Kill number `k`: once (k + 1) / (kills + 1) of the bulk jobs ended, SIGKILL Redis; when a
    producer's enqueue has failed (at least OUTAGE_MIN later) start it again, and measure how
    long each worker takes to start a job after that."""
    ledger = workers.chaos
    share = (k + 1) * tier.jobs // (tier.kills + 1)
    ledger.wait_until(f"{share} jobs ended", lambda: ledger.count("end") >= share, UP)
    assert_alive(workers, pair)

    server.kill()
    killed = time.monotonic()  # after the reap: from here on, nothing can reach Redis
    # Down until the producer has met it down; past OUTAGE_MAX it comes back anyway and the
    # missing BrokerUnavailable fails the test after the run.
    deadline = killed + OUTAGE_MAX
    while time.monotonic() < deadline and not (
        time.monotonic() - killed >= OUTAGE_MIN and producer.unavailable_since(killed)
    ):
        time.sleep(0.01)  # a thread's progress and a span of time: nothing to await
    assert_alive(workers, pair)
    restarting = time.monotonic()
    server.restart()
    outage = Outage(killed, restarting, time.monotonic(), time.time())
    seen = len(ledger.events)  # read before the kill: every later start is past this index

    def resumed() -> bool:
        for event in ledger.events[seen:]:
            if event.event == "start" and event.t > outage.back_wall:
                outage.resumed.setdefault(event.tag, event.t - outage.back_wall)
        return len(outage.resumed) == len(pair)

    ledger.wait_until(f"both workers start a job after restart {k}", resumed, UP)
    return outage


def assert_alive(workers: ChaosWorkers, pair: list[Started]) -> None:
    """No worker exited (nor re-executed itself)."""
    for one in pair:
        log = (workers.tmp_path / f"worker-{one.index}.log").read_text(errors="replace")
        assert one.alive, f"worker {one.tag} exited with {one.proc.returncode}:\n{log[-3000:]}"
        assert "restarting the worker" not in log
