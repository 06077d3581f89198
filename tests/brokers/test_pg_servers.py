"""The test-owned PostgreSQL clusters of tests/brokers/pg_servers.py do what the fault tests rely
on: a row committed before `restart_immediate()` is there after the WAL replay, `stop()` and
`kill()` leave no process and a free port, the fixture removes what it made, and a test process
that dies takes its server with it. Checked with psycopg and psutil directly, as a user would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.brokers.pg_servers import (
    HOST,
    USER,
    PostgresCluster,
    bindable,
    refuses,
    require_postgres,
    running_cluster,
)
from tests.brokers.pg_servers import pg_cluster as pg_cluster

ROOT = Path(__file__).resolve().parents[2]
#: Seconds the processes of a server get to vanish after their parent died.
GONE_WITHIN = 30.0


def ended(pid: int) -> bool:
    """No process `pid` runs (a zombie nobody reaped has ended too)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_ended(pids: list[int], port: int) -> None:
    """Poll until every pid has ended and nothing listens on `port`, or fail."""
    deadline = time.monotonic() + GONE_WITHIN
    while not (all(ended(pid) for pid in pids) and refuses(port)):
        assert time.monotonic() < deadline, (
            f"still running after {GONE_WITHIN}s: {[pid for pid in pids if not ended(pid)]}"
        )
        time.sleep(0.05)  # other processes' exits: nothing to await


def test_a_row_committed_before_an_immediate_restart_is_there_after(
    pg_cluster: PostgresCluster,
) -> None:
    with pg_cluster.connect() as conn:
        assert conn.execute("SHOW fsync").fetchone() == ("on",)
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        conn.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
        for i in range(100):  # one commit each (autocommit)
            conn.execute("INSERT INTO kept VALUES (%s, %s)", (i, f"row {i}"))
        with conn.transaction():
            conn.execute("UPDATE kept SET note = 'last' WHERE id = 99")
    pid, port = pg_cluster.pid, pg_cluster.port

    pg_cluster.restart_immediate()

    assert pg_cluster.port == port
    assert pg_cluster.pid is not None
    assert pg_cluster.pid != pid  # a new postmaster
    # The start after an immediate stop is a crash recovery: the WAL is replayed.
    log = pg_cluster.log_since_start()
    assert "database system was interrupted" in log, log
    assert "redo done" in log or "redo starts" in log, log
    with pg_cluster.connect() as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (100,)
        assert conn.execute("SELECT note FROM kept WHERE id = 99").fetchone() == ("last",)


def test_the_server_runs_as_the_postgres_user_on_its_own_port(
    pg_cluster: PostgresCluster,
) -> None:
    owner = psutil.Process(pg_cluster.pid).username()
    assert owner == (USER if os.geteuid() == 0 else psutil.Process().username())
    assert pg_cluster.port != 5432
    with pg_cluster.connect() as conn:
        row = conn.execute("SELECT current_setting('port'), current_user").fetchone()
    assert row == (str(pg_cluster.port), USER)
    assert pg_cluster.url(schema="t1") == (
        f"postgresql://{USER}@{HOST}:{pg_cluster.port}/postgres?schema=t1"
    )


def test_the_port_is_free_and_no_process_left_after_stop(pg_cluster: PostgresCluster) -> None:
    with pg_cluster.connect() as conn:  # a backend of a client that stays connected
        conn.execute("SELECT 1")
        pids = [p.pid for p in pg_cluster.processes()]
        assert len(pids) > 3  # postmaster, checkpointer, WAL writer, ..., this backend
        port = pg_cluster.port
        pg_cluster.stop()
        assert all(ended(pid) for pid in pids)
        assert refuses(port)
        assert bindable(port)
    assert "database system is shut down" in pg_cluster.log_since_start()


def test_kill_leaves_no_process_and_a_start_recovers(pg_cluster: PostgresCluster) -> None:
    with pg_cluster.connect() as conn:
        conn.execute("CREATE TABLE t AS SELECT 1 AS one")
        pids = [p.pid for p in pg_cluster.processes()]
        pg_cluster.kill()
    assert all(ended(pid) for pid in pids)
    assert refuses(pg_cluster.port)
    pg_cluster.start()
    with pg_cluster.connect() as conn:
        assert conn.execute("SELECT one FROM t").fetchone() == (1,)


def test_the_context_removes_the_directory_and_frees_the_port(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        root, port = cluster.root, cluster.port
        assert (root / "data" / "PG_VERSION").exists()
    assert not root.exists()
    assert refuses(port)
    assert "ready to accept connections" in (tmp_path / "postgres.log").read_text()


STARTER = """
import sys, time
from pathlib import Path
from tests.brokers.pg_servers import PostgresCluster
cluster = PostgresCluster(Path(sys.argv[1])).start()
print(cluster.proc.pid, cluster.port, cluster.root, flush=True)
time.sleep(600)
"""


def test_a_server_dies_with_the_test_process_that_started_it(tmp_path: Path) -> None:
    require_postgres()
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    root: Path | None = None
    try:
        assert starter.stdout is not None
        line = starter.stdout.readline().decode()  # once the server accepts connections
        assert line, f"the starter exited with {starter.wait()}"
        pid, port, where = line.split()
        root = Path(where)
        postmaster = psutil.Process(int(pid))
        pids = [postmaster.pid, *(child.pid for child in postmaster.children(recursive=True))]
        assert not refuses(int(port))

        starter.send_signal(signal.SIGKILL)  # no finally, no atexit: only the kernel acts
        starter.wait(timeout=10)

        wait_ended(pids, int(port))
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait(timeout=10)
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
