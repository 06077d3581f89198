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

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from tests.brokers.redis_servers import RedisServer
from tests.brokers.redis_servers import redis_server as redis_server
from tests.system.chaos.conftest import ChaosWorkers
from tests.system.chaos.ledger import TimedLedger
from tests.system.faults.restarts import (
    RESUME_BOUND,
    Outage,
    Scene,
    restart,
    run_through_restarts,
)
from tests.system.faults.restarts import assert_alive as assert_alive  # for the listener test
from tests.system.ledger import Ledger

#: Longer than any outage here, so no lease lapses while Redis is down: a restart alone must
#: not make a job run twice or count a crash.
LEASE = 5.0
OUTAGE_MIN = 0.5  # seconds Redis stays down at least, so the outage is one a producer meets
OUTAGE_MAX = 10.0  # ... and at most, waiting for the producer's BrokerUnavailable


@dataclass(frozen=True)
class Tier:
    jobs: int
    restarts: int  # each a SIGKILL and a start
    within: timedelta  # for every job to end after the last restart


FULL = Tier(jobs=5_000, restarts=5, within=timedelta(seconds=60))
SOAK = Tier(jobs=20_000, restarts=20, within=timedelta(seconds=180))


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

    def kill_and_restart(scene: Scene, k: int) -> Outage:
        # SIGKILL returns once the process is reaped; the restart reloads the AOF on the same
        # port and directory and returns once Redis answers PING.
        return restart(scene, k, server.kill, server.restart, down=(OUTAGE_MIN, OUTAGE_MAX))

    run = run_through_restarts(
        server.url(prefix="restart"), workers, tier, lease=LEASE, restart_once=kill_and_restart
    )
    print(
        f"\nredis restart x{tier.restarts}: {len(run.acknowledged)} jobs ({tier.jobs} bulk, "
        f"{len(run.produced)} acknowledged to the producer thread), states "
        f"{dict(run.states)}, lost {len(run.lost)}, ran twice {len(run.twice)}, rescued after "
        f"a lease lapsed {len(run.rescued)}; {run.outages_summary()}"
        f"; producer: {len(run.attempts)} enqueues, refused {dict(run.errors)}, "
        f"{run.stored_anyway} of the refused were stored anyway; "
        f"wall {time.monotonic() - began:.1f}s"
    )

    run.assert_nothing_lost()
    run.assert_refused_while_down()
    for k, outage in enumerate(run.outages):
        late = {tag: s for tag, s in outage.resumed.items() if s > RESUME_BOUND}
        assert not late, f"outage {k}: workers resumed later than {RESUME_BOUND}s: {late}"
    run.assert_stopped_cleanly()
