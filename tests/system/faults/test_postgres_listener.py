"""The listener's connection ended under a worker: the broker listens again, and a job enqueued
right after starts within a second, 20 times over.

A PostgreSQL cluster of the test's own (tests/brokers/pg_servers.py) serves one real
`errands worker` process. The PostgreSQL broker waits for work with LISTEN/NOTIFY on one
connection per broker object, named `errands-listen` in pg_stat_activity. Twenty times, the
test finds that connection of the worker's (its client port is one of the worker process's
sockets) and ends it as an administrator would:

    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE application_name = 'errands-listen' AND pid = <the worker's listener>

and then at once enqueues job A: A must start within 1 s of its enqueue (measured from the
timed ledger the task writes). Once the worker listens on a new connection and is idle again,
job B is enqueued: B must start within 1 s too, which only notifications on the new connection
can do.

The worker's idle wait (ERRANDS_IDLE_WAIT, the longest wait between claims when no wake-up
arrives) is 60 s here, not the default 1 s, so no start within a second can come from the
worker's own timeout: only from the broker noticing the drop and listening again (a
notification sent while nobody listened is lost, so the broker must look again once it
listens) and from the notifications it then receives. Checked against the broker with its
wake-ups taken out: A then waits for the idle wait and the test fails.

What a user checks: after each kill, A and B start within 1 s; each kill is followed by a new
listener backend of the worker; the worker never exits; every job completes, each run once.
About 11 s.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

import errands
from errands import JobState
from errands.job import JobId
from tests.brokers.pg_servers import PostgresCluster
from tests.brokers.pg_servers import pg_cluster as pg_cluster
from tests.system import sysapp
from tests.system.chaos.checker import fetch_jobs
from tests.system.chaos.conftest import ChaosWorkers, Started
from tests.system.chaos.ledger import TimedLedger
from tests.system.faults.test_redis_restart import assert_alive
from tests.system.ledger import Ledger

T = TypeVar("T")

KILLS = 20
START_BOUND = 1.0  # seconds from an enqueue to the job's start, after each kill
IDLE_WAIT = 60.0  # the worker's ERRANDS_IDLE_WAIT: far longer than START_BOUND
LISTENER = "errands-listen"  # the application_name of the broker's listening connection
QUIET = 0.1  # seconds the worker's other connections stay idle before B is enqueued
SCHEMA = "listener"
UP = timedelta(seconds=30)
#: How long a job's start or a new listener is awaited before the test fails at once (a start
#: later than START_BOUND but within this is measured and fails the test at the end).
WAIT = timedelta(seconds=10)


@dataclass
class Round:
    """One kill of the worker's listener and what followed it."""

    killed_pid: int
    a_start: float  # seconds from A's enqueue to its start
    relisten: float  # seconds from the kill until a new listener backend of the worker was seen
    new_pid: int = 0
    b_start: float = 0.0  # seconds from B's enqueue to its start


@pytest.fixture
def workers(tmp_path: Path, pg_cluster: PostgresCluster) -> Iterator[ChaosWorkers]:
    """Worker processes on the test's own PostgreSQL, with a 60 s idle wait; SIGKILLed at
    the end."""
    pool = ChaosWorkers(
        tmp_path,
        pg_cluster.url(schema=SCHEMA),
        Ledger(tmp_path / "ledger.txt"),
        TimedLedger(tmp_path / "chaos-ledger.txt"),
        env={"ERRANDS_IDLE_WAIT": str(IDLE_WAIT)},
    )
    yield pool
    pool.stop_all()


def poll(check: Callable[[], T | None], what: str, within: timedelta = UP) -> T:
    """Call `check` until it returns something other than None, or fail naming `what`."""
    deadline = time.monotonic() + within.total_seconds()
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {within}")
        time.sleep(0.005)  # server and other processes' state: nothing to await


class Server:
    """An administrator's session on the test's cluster, looking at the worker's connections."""

    def __init__(self, cluster: PostgresCluster, worker: Started) -> None:
        self.cluster, self.worker = cluster, worker
        self.conn = cluster.connect(application_name="test-admin")

    def close(self) -> None:
        self.conn.close()

    def ports(self) -> list[int]:
        """The local ports of the worker process's TCP connections to the cluster (what
        pg_stat_activity calls client_port)."""
        sockets = psutil.Process(self.worker.pid).net_connections(kind="tcp")
        return [s.laddr.port for s in sockets if s.raddr and s.raddr.port == self.cluster.port]

    def rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def listener(self) -> int | None:
        """The pid of the worker's listening backend, when there is exactly one."""
        found = self.rows(
            "SELECT pid FROM pg_stat_activity"
            " WHERE application_name = %(name)s AND client_port = ANY(%(ports)s)",
            {"name": LISTENER, "ports": self.ports()},
        )
        return found[0][0] if len(found) == 1 else None

    def listener_other_than(self, old: int) -> int | None:
        """The pid of the worker's listening backend once it is not `old`."""
        pid = self.listener()
        return None if pid == old else pid

    def terminate(self, pid: int) -> bool:
        """End the worker's listening backend `pid`, as an administrator would."""
        [(done,)] = self.rows(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %(name)s AND pid = %(pid)s",
            {"name": LISTENER, "pid": pid},
        )
        return bool(done)

    def quiet(self) -> bool:
        """Every other connection of the worker idle for QUIET seconds: its claim loop has
        nothing left to ask and waits for a wake-up."""
        [(busy,)] = self.rows(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE client_port = ANY(%(ports)s) AND application_name <> %(name)s"
            " AND (state <> 'idle' OR clock_timestamp() - state_change < %(quiet)s)",
            {"name": LISTENER, "ports": self.ports(), "quiet": timedelta(seconds=QUIET)},
        )
        return int(busy) == 0


def test_a_job_starts_within_a_second_after_each_of_20_listener_kills(
    pg_cluster: PostgresCluster, workers: ChaosWorkers
) -> None:
    url = pg_cluster.url(schema=SCHEMA)
    ledger = workers.chaos
    app = errands.App(url)
    acknowledged: dict[str, JobId] = {}

    def enqueue_and_time(key: str) -> float:
        """Enqueue job `key`; seconds from the enqueue to its start in the ledger."""
        began = time.time()
        [handle] = app.enqueue_many([sysapp.chaos_sleeper.call(key, 0.0)])
        acknowledged[key] = handle.id
        ledger.wait_until(f"{key} starts", lambda: bool(ledger.runs(key)), WAIT)
        return ledger.runs(key)[0].start - began

    def settle(server: Server, key: str) -> int:
        """Wait until `key` completed and the worker is idle on one listener; its pid."""
        ledger.wait_until(f"{key} ends", lambda: ledger.runs(key)[0].end is not None, UP)
        poll(lambda: completed(app, acknowledged[key]) or None, f"{key} completed")
        pid = poll(server.listener, "the worker's listener")
        poll(lambda: server.quiet() or None, "the worker idle")
        return pid

    server: Server | None = None
    try:
        app.portal.call(app.open_async)  # creates the schema before the worker starts
        worker = workers.launch("--pool", "thread", "--concurrency", "1", lease=5.0)
        workers.wait_ready(worker)
        server = Server(pg_cluster, worker)
        warm = enqueue_and_time("warm")  # with the listener as it started
        listener = settle(server, "warm")

        rounds: list[Round] = []
        for k in range(KILLS):
            assert server.terminate(listener), f"kill {k}: no backend {listener} to end"
            killed = time.monotonic()
            a_start = enqueue_and_time(f"a{k:02d}")
            new_pid = poll(
                functools.partial(server.listener_other_than, listener),
                f"kill {k}: a new listener of the worker",
                WAIT,
            )
            one = Round(listener, a_start, time.monotonic() - killed, new_pid)
            listener = settle(server, f"a{k:02d}")
            assert listener == new_pid, f"kill {k}: the listener changed again"
            one.b_start = enqueue_and_time(f"b{k:02d}")
            listener = settle(server, f"b{k:02d}")
            rounds.append(one)
            assert_alive(workers, [worker])

        jobs = fetch_jobs(app, list(acknowledged.values()))
    finally:
        if server is not None:
            server.close()
        app.close()

    ledger.refresh()
    runs = ledger.all_runs()
    a_starts = [r.a_start for r in rounds]
    b_starts = [r.b_start for r in rounds]
    print(
        f"\nlistener killed x{KILLS} (worker idle wait {IDLE_WAIT:g}s): start after enqueue "
        f"before any kill {warm:.3f}s; right after a kill: median "
        f"{statistics.median(a_starts):.3f}s, max {max(a_starts):.3f}s; on the new listener: "
        f"median {statistics.median(b_starts):.3f}s, max {max(b_starts):.3f}s; new listener "
        f"seen after median {statistics.median(r.relisten for r in rounds):.3f}s, max "
        f"{max(r.relisten for r in rounds):.3f}s"
    )

    late = {f"a{k:02d}": r.a_start for k, r in enumerate(rounds) if r.a_start > START_BOUND}
    late |= {f"b{k:02d}": r.b_start for k, r in enumerate(rounds) if r.b_start > START_BOUND}
    assert not late, f"jobs that started later than {START_BOUND}s after their enqueue: {late}"
    assert len({r.killed_pid for r in rounds} | {rounds[-1].new_pid}) == KILLS + 1
    assert all(r.new_pid != r.killed_pid for r in rounds)
    assert [job.state for job in jobs] == [JobState.COMPLETED] * len(acknowledged)
    assert {key: len(runs.get(key, [])) for key in acknowledged} == dict.fromkeys(acknowledged, 1)


def completed(app: errands.App, job_id: JobId) -> bool:
    """The job is stored as completed (read through the producer App's broker)."""
    return [job.state for job in fetch_jobs(app, [job_id])] == [JobState.COMPLETED]
