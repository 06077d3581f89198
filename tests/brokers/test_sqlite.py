"""What only the SQLite broker has: a file that outlives the process, its PRAGMAs, URLs,
migrations, storage errors, and wake-ups carried between processes by Unix datagrams.

Contract behaviour is tested once for every broker in tests/conformance.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from errands.brokers import from_url
from errands.brokers.contract import ClaimOptions
from errands.brokers.sqlfiles import parse_queries, split_statements
from errands.brokers.sqlite.broker import SQLiteBroker, parse_url
from errands.brokers.sqlite.sql import MIGRATIONS, Q
from errands.brokers.sqlite.wakeup import wake_directory
from errands.errors import BrokerFull, BrokerUnavailable
from errands.job import JobSpec, JobState, new_job_id
from errands.outcome import Completed
from errands.testing import FakeClock

LEASE = timedelta(seconds=30)
SRC = str(Path(__file__).resolve().parents[2] / "src")


def spec(queue: str = "default", payload: bytes = b"{}") -> JobSpec:
    return JobSpec(id=new_job_id(), task="noop", queue=queue, payload=payload)


def total_jobs(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        (count,) = connection.execute("SELECT count(*) FROM jobs").fetchone()
    return int(count)


# -- the file ----------------------------------------------------------------------------------


async def test_jobs_survive_closing_and_reopening_the_file(tmp_path: Path) -> None:
    clock = FakeClock()
    first = SQLiteBroker(tmp_path / "errands.db", clock=clock)
    await first.open()
    [stored] = await first.enqueue_many([spec(payload=b"\x00kept\xff")])
    await first.close()
    again = SQLiteBroker(tmp_path / "errands.db", clock=clock)
    await again.open()
    try:
        [job] = await again.get([stored.job_id])
        assert (job.state, job.payload, job.enqueued_at) == (
            JobState.AVAILABLE,
            b"\x00kept\xff",
            clock.now(),
        )
    finally:
        await again.close()


async def test_file_is_in_wal_mode_with_durable_commits_by_default(broker: SQLiteBroker) -> None:
    with sqlite3.connect(broker.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    levels = await broker._db.write(_pragmas)
    assert levels == {"synchronous": 2, "foreign_keys": 1, "busy_timeout": 30_000}  # 2 = FULL


async def test_synchronous_and_busy_timeout_follow_the_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/errands.db?synchronous=normal&busy_timeout_ms=1500"
    broker = SQLiteBroker.from_url(url, clock=FakeClock())
    await broker.open()
    try:
        levels = await broker._db.write(_pragmas)
        assert (levels["synchronous"], levels["busy_timeout"]) == (1, 1500)  # 1 = NORMAL
    finally:
        await broker.close()


def _pragmas(connection: sqlite3.Connection) -> dict[str, int]:
    return {
        name: connection.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("synchronous", "foreign_keys", "busy_timeout")
    }


async def test_a_resent_batch_stores_each_job_once(broker: SQLiteBroker) -> None:
    # A producer that lost the reply to an enqueue sends the same specs (same ids) again.
    first, second, third = spec(), spec(), spec()
    await broker.enqueue_many([first, second])
    again = await broker.enqueue_many([first, third, third])
    assert [(item.job_id, item.duplicate) for item in again] == [
        (first.id, True),
        (third.id, False),
        (third.id, True),
    ]
    assert total_jobs(broker.path) == 3


def test_an_in_memory_database_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a file path"):
        SQLiteBroker(":memory:")


# -- URLs ----------------------------------------------------------------------------------------


def test_url_with_three_slashes_names_a_relative_path() -> None:
    assert parse_url("sqlite:///errands.db") == (Path("errands.db"), {})
    assert parse_url("sqlite:///data/jobs.db") == (Path("data/jobs.db"), {})


def test_url_with_four_slashes_names_an_absolute_path() -> None:
    assert parse_url("sqlite:////tmp/x.db") == (Path("/tmp/x.db"), {})


def test_url_options_become_constructor_options() -> None:
    path, options = parse_url("sqlite:////tmp/x.db?synchronous=NORMAL&busy_timeout_ms=250")
    assert (path, options) == (
        Path("/tmp/x.db"),
        {"synchronous": "NORMAL", "busy_timeout": timedelta(milliseconds=250)},
    )


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://host/errands.db",  # a host where the empty authority belongs
        "sqlite:///",  # no file
        "sqlite:///x.db?journal=delete",  # unknown option
        "sqlite:///x.db?busy_timeout_ms=soon",  # not a number
    ],
)
def test_bad_urls_are_refused_naming_the_url(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite"):
        parse_url(url)


def test_a_bad_synchronous_level_is_refused() -> None:
    with pytest.raises(ValueError, match="synchronous='SOMETIMES'"):
        SQLiteBroker.from_url("sqlite:///x.db?synchronous=sometimes", clock=FakeClock())


def test_from_url_of_the_package_opens_a_sqlite_broker(tmp_path: Path) -> None:
    broker = from_url(f"sqlite:///{tmp_path}/errands.db")
    assert isinstance(broker, SQLiteBroker)
    assert broker.path == tmp_path / "errands.db"


# -- migrations ------------------------------------------------------------------------------------


async def test_migrating_again_changes_nothing(broker: SQLiteBroker) -> None:
    [stored] = await broker.enqueue_many([spec()])
    await broker.migrate()
    await broker.migrate()
    with sqlite3.connect(broker.path) as other:
        versions = [row[0] for row in other.execute("SELECT version FROM migrations")]
    assert versions == [migration.version for migration in MIGRATIONS]
    assert [job.id for job in await broker.get([stored.job_id])] == [stored.job_id]


def test_processes_racing_to_migrate_a_new_file_all_succeed(tmp_path: Path) -> None:
    path = tmp_path / "raced.db"
    code = (
        "import asyncio, sys\n"
        "from errands.brokers.sqlite.broker import SQLiteBroker\n"
        "async def main():\n"
        "    broker = SQLiteBroker(sys.argv[1])\n"
        "    await broker.open()\n"
        "    await broker.close()\n"
        "asyncio.run(main())\n"
    )
    racers = [_python(code, str(path)) for _ in range(4)]
    assert [racer.wait(timeout=60) for racer in racers] == [0, 0, 0, 0]
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT version FROM migrations").fetchall()
    assert len(rows) == len(MIGRATIONS)


def test_every_migration_statement_splits_cleanly() -> None:
    assert split_statements("CREATE TABLE a (x TEXT DEFAULT ';');\n-- done\n") == [
        "CREATE TABLE a (x TEXT DEFAULT ';');"
    ]
    for migration in MIGRATIONS:
        assert migration.statements()
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("CREATE TABLE a (x")


def test_named_queries_refuse_a_name_used_twice() -> None:
    assert parse_queries("-- name: a\nSELECT 1;\n-- name: b\nSELECT 2;") == {
        "a": "SELECT 1;",
        "b": "SELECT 2;",
    }
    with pytest.raises(ValueError, match="'a' is defined twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;")


async def test_claims_walk_the_partial_index_of_available_jobs(broker: SQLiteBroker) -> None:
    def plan(connection: sqlite3.Connection) -> str:
        sql = "EXPLAIN QUERY PLAN " + Q["claim_queue"]
        params = {"now": 0, "worker_id": "w", "expires_at": 0, "queue": "q", "n": 100}
        return " | ".join(str(row[3]) for row in connection.execute(sql, params))

    shown = await broker._db.write(plan)
    assert "jobs_claimable" in shown
    assert "TEMP B-TREE" not in shown  # the index gives claim order: no sort per claim


# -- storage errors --------------------------------------------------------------------------------


async def test_a_write_past_max_page_count_raises_broker_full_and_stores_nothing(
    tmp_path: Path,
) -> None:
    broker = SQLiteBroker(tmp_path / "small.db", max_page_count=64)
    await broker.open()
    try:
        await broker.enqueue_many([spec()])
        with pytest.raises(BrokerFull, match=r"small\.db"):
            await broker.enqueue_many([spec(payload=b"x" * 4096) for _ in range(100)])
        assert total_jobs(broker.path) == 1
        await broker.enqueue_many([spec()])  # the broker still works after the failed write
        assert total_jobs(broker.path) == 2
    finally:
        await broker.close()


async def test_a_lock_held_past_busy_timeout_raises_broker_unavailable(tmp_path: Path) -> None:
    broker = SQLiteBroker(tmp_path / "locked.db", busy_timeout=timedelta(milliseconds=100))
    await broker.open()
    holder = sqlite3.connect(broker.path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process's long write
        with pytest.raises(BrokerUnavailable, match=r"locked\.db"):
            await broker.enqueue_many([spec()])
        holder.execute("ROLLBACK")
        await broker.enqueue_many([spec()])
        assert total_jobs(broker.path) == 1
    finally:
        holder.close()
        await broker.close()


# -- wake-ups --------------------------------------------------------------------------------------

WAITER = """
import asyncio, sys, time
from datetime import timedelta
from errands.brokers.contract import ClaimOptions
from errands.brokers.sqlite.broker import SQLiteBroker

async def main():
    broker = SQLiteBroker(sys.argv[1])
    await broker.open()
    print("ready", flush=True)
    for _ in range(int(sys.argv[2])):
        await broker.wait_ready(["wake"], timedelta(seconds=30))
        woke = time.monotonic()
        await broker.claim(ClaimOptions(["wake"], 100, timedelta(seconds=30), worker_id="child"))
        print(repr(woke), flush=True)
    await broker.close()

asyncio.run(main())
"""


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env
    )


async def _read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 30)
    assert line, "the waiting process ended early"
    return line.strip()


async def test_a_waiter_in_another_process_wakes_on_commit_well_within_a_second(
    broker: SQLiteBroker,
) -> None:
    # Real time on purpose: this is about latency. The waiter re-checks at least every second,
    # so a median far below that shows the datagrams, not the re-check, woke it.
    rounds = 5
    child = _python(WAITER, str(broker.path), str(rounds))
    try:
        assert await _read_line(child) == "ready"
        latencies = []
        for _ in range(rounds):
            await asyncio.sleep(0.2)  # let the child fall asleep in wait_ready
            await broker.enqueue_many([spec("wake")])
            committed = time.monotonic()
            latencies.append(float(await _read_line(child)) - committed)
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
    assert statistics.median(latencies) < 0.25, latencies


FINISHER = """
import asyncio, sys
from datetime import timedelta
from errands.brokers.contract import ClaimOptions
from errands.brokers.sqlite.broker import SQLiteBroker
from errands.outcome import Completed
async def main():
    broker = SQLiteBroker(sys.argv[1])
    await broker.open()
    options = ClaimOptions(['default'], 1, timedelta(seconds=30), worker_id='c')
    [claimed] = await broker.claim(options)
    await asyncio.sleep(0.3)
    await broker.finish([Completed(claimed.lease, result=b'done')])
    await broker.close()
asyncio.run(main())
"""


@pytest.mark.parametrize("waiter", ["wait_done", "wait_done_blocking in a thread"])
async def test_a_result_waiter_wakes_when_another_process_finishes(
    broker: SQLiteBroker, waiter: str
) -> None:
    [stored] = await broker.enqueue_many([spec()])
    child = _python(FINISHER, str(broker.path))
    try:
        started = time.monotonic()
        if waiter == "wait_done":
            [job] = await broker.wait_done([stored.job_id], timedelta(seconds=30))
        else:
            waited_for = ([stored.job_id], timedelta(seconds=30))
            [job] = await asyncio.to_thread(broker.wait_done_blocking, *waited_for)
        waited = time.monotonic() - started
        assert (job.state, job.result) == (JobState.COMPLETED, b"done")
        assert waited < 15  # the child's start-up dominates; a lost wake-up would still end by 1 s
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()


async def test_a_finish_in_this_process_wakes_a_blocking_waiter_at_once(
    broker: SQLiteBroker,
) -> None:
    [stored] = await broker.enqueue_many([spec()])
    [claimed] = await broker.claim(ClaimOptions(["default"], 1, LEASE, worker_id="w"))
    await broker.wait_ready(["default"], timedelta(0))  # binds the socket
    await asyncio.sleep(0.25)  # past the first re-checks after binding: now only a notice wakes
    waiter = asyncio.create_task(
        asyncio.to_thread(broker.wait_done_blocking, [stored.job_id], timedelta(seconds=30))
    )
    await asyncio.sleep(0.1)  # the thread is asleep on its signal (were it not, it would still
    # read the finished job below: the timing, not the state, is what this test checks)
    await broker.finish([Completed(claimed.lease, result=b"done")])
    finished = time.monotonic()
    [job] = await waiter
    assert job.state is JobState.COMPLETED
    assert time.monotonic() - finished < 0.5  # a re-check would come a full second later


async def test_closing_the_broker_wakes_a_blocking_waiter_at_once(broker: SQLiteBroker) -> None:
    [stored] = await broker.enqueue_many([spec()])
    await broker.wait_ready(["nothing-here"], timedelta(0))  # binds the socket
    await asyncio.sleep(0.25)  # past the first re-checks after binding: now only a notice wakes
    waiter = asyncio.create_task(
        asyncio.to_thread(broker.wait_done_blocking, [stored.job_id], timedelta(seconds=30))
    )
    await asyncio.sleep(0.1)  # the thread is asleep on its signal
    await broker.close()
    closed = time.monotonic()
    [job] = await waiter
    assert job.state is JobState.AVAILABLE
    assert time.monotonic() - closed < 0.5  # a re-check would come a full second later


async def test_closing_removes_the_wake_up_socket(broker: SQLiteBroker) -> None:
    await broker.wait_ready(["nothing-here"], timedelta(milliseconds=1))
    own = broker._wakeup._own
    assert own is not None
    assert _exists(own)
    assert Path(own).parent == wake_directory(broker.path)
    await broker.close()
    assert not _exists(own)


def _exists(path: str | Path) -> bool:
    return os.path.exists(path)


async def test_a_socket_left_by_a_dead_process_is_removed_by_the_next_notice(
    broker: SQLiteBroker,
) -> None:
    directory = wake_directory(broker.path)
    directory.mkdir(mode=0o700, exist_ok=True)
    stale = directory / "999999-dead.sock"
    left_behind = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    left_behind.bind(str(stale))
    left_behind.close()  # the file stays, nobody reads it: sends are refused
    await broker.enqueue_many([spec()])
    assert not _exists(stale)
    directory.rmdir()  # this broker never listened, so nobody else tidies up


def test_every_path_to_one_file_shares_one_wake_up_directory(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    via_link = wake_directory(tmp_path / "link" / "errands.db")
    assert via_link == wake_directory(tmp_path / "real" / ".." / "real" / "errands.db")
    assert len(str(via_link / f"{2**22}-0123abcd.sock").encode()) < 108


async def test_a_claim_and_a_finish_of_100_jobs_are_one_call_each_with_distinct_tokens(
    broker: SQLiteBroker,
) -> None:
    await broker.enqueue_many([spec() for _ in range(250)])
    before = broker.calls
    claimed = await broker.claim(ClaimOptions(["default"], 100, LEASE, worker_id="w"))
    assert await broker.finish([Completed(c.lease, result=b"") for c in claimed]) == [True] * 100
    assert broker.calls - before == 2
    tokens = {c.lease.token for c in claimed}
    assert len(tokens) == 100  # a token per job, never shared within a claim


FORKED = """
import asyncio, os, sys
from datetime import timedelta
from errands.brokers.sqlite.broker import SQLiteBroker
from errands.job import JobSpec, new_job_id

broker = SQLiteBroker(sys.argv[1])
job = lambda: JobSpec(id=new_job_id(), task="noop", queue="q", payload=b"{}")

async def before_fork():
    await broker.open()
    await broker.enqueue_many([job()])
    await broker.wait_ready(["elsewhere"], timedelta(milliseconds=1))  # binds a socket
    return broker._wakeup._own

async def in_child():
    await broker.enqueue_many([job()])
    await broker.wait_ready(["elsewhere"], timedelta(milliseconds=1))
    await broker.close()

async def after_child():
    await broker.enqueue_many([job()])
    counts = await broker.counts()
    await broker.close()
    return counts.total("available")

own = asyncio.run(before_fork())
pid = os.fork()
if pid == 0:
    asyncio.run(in_child())
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert status == 0, status
assert os.path.exists(own), "the child removed the parent's socket"
print(asyncio.run(after_child()), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_opens_its_own_connections_and_socket(tmp_path: Path) -> None:
    # Also reuses the broker across asyncio.run calls, as a blocking facade's loop might.
    process = _python(FORKED, str(tmp_path / "forked.db"))
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert out.strip() == "3"  # the parent's, the child's and the parent's after the fork


FORKED_MID_COMMIT = """
import asyncio, os, sys, threading
from errands.brokers.sqlite.broker import SQLiteBroker
from errands.job import JobSpec, new_job_id

broker = SQLiteBroker(sys.argv[1])
job = lambda: JobSpec(id=new_job_id(), task="noop", queue="q", payload=b"{}")
asyncio.run(broker.open())
committing, forked = threading.Event(), threading.Event()

write = broker._thread_group._write

def write_slowly(specs):
    with broker._db._writer._mutex:
        committing.set()
        forked.wait()  # the fork happens while this thread leads a group and holds the writer
    return write(specs)

def lead():
    broker._thread_group._write = write_slowly
    broker.enqueue_many_blocking([job()])

threading.Thread(target=lead, daemon=True).start()
committing.wait()
pid = os.fork()
if pid == 0:
    broker._thread_group._write = write
    one = job()
    stored = broker.enqueue_many_blocking([one])
    os._exit(0 if [e.job_id for e in stored] == [one.id] else 1)
forked.set()
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_forked_while_a_thread_commits_enqueues_on_its_own(tmp_path: Path) -> None:
    process = _python(FORKED_MID_COMMIT, str(tmp_path / "forked.db"))
    out, _ = process.communicate(timeout=60)
    assert (process.returncode, out.strip()) == (0, "0")


async def test_a_url_can_cap_the_file_size(tmp_path: Path) -> None:
    broker = from_url(f"sqlite:///{tmp_path / 'capped.db'}?max_page_count=40")
    await broker.open()
    try:
        await broker.enqueue_many([spec()])
        with pytest.raises(BrokerFull, match=r"capped\.db"):
            await broker.enqueue_many([spec(payload=b"x" * 4096) for _ in range(100)])
    finally:
        await broker.close()
