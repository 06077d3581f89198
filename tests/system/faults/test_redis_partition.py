"""A network partition with fencing: a worker cut off from Redis while it runs a long job loses
the job to another worker, and its late writes with the stale lease token are refused.

A Redis of the test's own (tests/brokers/redis_servers.py) serves two real `errands worker`
processes: worker A talks to it through a TCP proxy (tests/system/proxy.py), worker B directly.
A starts a long job; the proxy is cut for twice the lease; A's lease lapses, B rescues the job
and runs it to completion. When the link returns, A is still running its stale attempt: its
next extend leaves the lease out (A logs that the lease was lost) and its finish is refused
(A logs that the outcome was rejected). The rejections are counted from A's log, where the
worker writes one line for each (errands/worker/leases.py and worker.py).

What a user checks: the job is `completed` once, by B, on attempt 2, with one lease-expired
error for A's attempt; A's late finish changed nothing; exactly one extend and one finish of A
were refused; neither worker exited.

Run twice, once per kind of cut: `refuse` (the proxy stops listening: connects fail at once)
and `blackhole` (connects succeed and then hear nothing, as behind a dead route). About 7 s
each.

A second test cuts a producer off the same way: each enqueue during the cut raises
`errands.BrokerUnavailable` (nothing else, and no false success), on both event loops a portal
may run (uvloop, the default where installed, and asyncio), and enqueues succeed again once the
link is back. Behind a blackhole only a read timeout can end a call, so that case sets the
URL's `socket_timeout` (redis-py's default is none: the call would wait for the link).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import errands
from errands import BrokerUnavailable, ErrorKind, JobState
from tests.brokers.redis_servers import RedisServer
from tests.brokers.redis_servers import redis_server as redis_server
from tests.system import sysapp
from tests.system.chaos.conftest import ChaosWorkers, Started
from tests.system.chaos.ledger import TimedLedger
from tests.system.ledger import Ledger
from tests.system.proxy import Proxy

LEASE = 1.5
CUT = 2 * LEASE  # seconds the link stays cut
#: A's first run of the job outlasts the cut by this much, so it is still running (and still
#: extending) when the link returns, and finishes after that.
AFTER = 3.0
UP = timedelta(seconds=30)
LOST = "lease of job {} was lost"  # a held lease left out of an extend reply (leases.py)
REJECTED = "outcome of job {} rejected"  # a finish refused for its stale token (worker.py)


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[Proxy]:
    with Proxy("127.0.0.1", redis_server.port) as running:
        yield running


@pytest.fixture
def workers(tmp_path: Path, redis_server: RedisServer) -> Iterator[ChaosWorkers]:
    """Worker processes on the test's own Redis (directly, unless told otherwise); SIGKILLed
    at the end."""
    pool = ChaosWorkers(
        tmp_path,
        redis_server.url(prefix="partition"),
        Ledger(tmp_path / "ledger.txt"),
        TimedLedger(tmp_path / "chaos-ledger.txt"),
        env={},
    )
    yield pool
    pool.stop_all()


def log_of(workers: ChaosWorkers, one: Started) -> str:
    return (workers.tmp_path / f"worker-{one.index}.log").read_text(errors="replace")


def worker_id(workers: ChaosWorkers, one: Started) -> str:
    """The id the worker logged at start-up (the broker stores it on the jobs it runs)."""
    found = re.search(r"worker (\S+) started: queues=", log_of(workers, one))
    assert found, log_of(workers, one)
    return found.group(1)


def wait_log(workers: ChaosWorkers, one: Started, text: str) -> None:
    workers.wait_log(one.index, text, UP)


@pytest.mark.parametrize("blackhole", [False, True], ids=["refuse", "blackhole"])
def test_a_worker_cut_off_for_twice_the_lease_loses_its_job_and_its_late_writes_are_refused(
    redis_server: RedisServer, proxy: Proxy, workers: ChaosWorkers, blackhole: bool
) -> None:
    url = redis_server.url(prefix="partition")
    ledger = workers.chaos
    args = ("--pool", "thread", "--concurrency", "1")
    a = workers.launch(*args, lease=LEASE, env={"ERRANDS_BROKER_URL": proxy.rewrite(url)})
    workers.wait_ready(a)
    app = errands.App(url)
    try:
        [handle] = app.enqueue_many(
            [sysapp.chaos_sleeper.call("long", CUT + AFTER, rerun_seconds=0.0)]
        )
        ledger.wait_until("A starts the job", lambda: len(ledger.runs("long")) == 1, UP)
        assert ledger.runs("long")[0].tag == a.tag
        b = workers.launch(*args, lease=LEASE)
        workers.wait_ready(b)
        a_id, b_id = worker_id(workers, a), worker_id(workers, b)

        proxy.cut(blackhole=blackhole)
        cut_at = time.monotonic()
        ledger.wait_until(
            "B runs the job again to its end",
            lambda: len(ledger.runs("long")) == 2 and ledger.runs("long")[1].end is not None,
            UP,
        )
        assert handle.result(timeout=UP) == "long"
        rerun = handle.refresh()
        # The partition is the experiment: it lasts its time, whatever happened meanwhile.
        time.sleep(max(0.0, cut_at + CUT - time.monotonic()))
        ledger.refresh()
        assert ledger.runs("long")[0].end is None, "A's run ended before the link came back"
        proxy.restore()

        # A learns it lost the lease at its next extend, then its finish is refused.
        wait_log(workers, a, LOST.format(handle.id))
        ledger.wait_until("A's run ends", lambda: ledger.runs("long")[0].end is not None, UP)
        wait_log(workers, a, REJECTED.format(handle.id))
        final = handle.refresh()
        assert a.alive
        assert b.alive
    finally:
        app.close()

    runs = ledger.runs("long")
    assert [(run.tag, run.end is not None) for run in runs] == [(a.tag, True), (b.tag, True)]
    # One completion, by B, and A's refused finish changed nothing of it.
    assert final.state is JobState.COMPLETED
    assert final.worker_id == b_id
    assert final.attempt == 2
    assert final == rerun
    assert [(e.attempt, e.kind) for e in final.errors] == [(1, ErrorKind.LEASE_EXPIRED)]
    assert a_id in final.errors[0].message
    # Exactly one refused extend and one refused finish, both A's.
    a_log, b_log = log_of(workers, a), log_of(workers, b)
    assert a_log.count(LOST.format(handle.id)) == 1
    assert a_log.count(REJECTED.format(handle.id)) == 1
    assert "rejected" not in b_log
    assert "was lost" not in b_log
    print(
        f"\npartition ({'blackhole' if blackhole else 'refuse'}): A={a_id} cut for {CUT}s; "
        f"B={b_id} re-ran the job; A's stale extend refused 1, stale finish refused 1"
    )


#: Seconds one enqueue may take to fail behind a cut (a blackhole needs its read timeout).
FAIL_WITHIN = 10.0


def enqueue_once(app: errands.App, key: str) -> str:
    """One enqueue of a job keyed `key`, in a thread so a hang fails the test instead of
    blocking it; "ok" or the exception's type name."""
    outcome: list[str] = []

    def run() -> None:
        try:
            app.enqueue_many([sysapp.sleeper.call(key, 0)])
        except Exception as error:  # every kind is recorded; the test says which may occur
            outcome.append(type(error).__name__)
        else:
            outcome.append("ok")

    thread = threading.Thread(target=run, name=f"enqueue-{key}", daemon=True)
    thread.start()
    thread.join(FAIL_WITHIN)
    assert outcome, f"enqueue {key} still blocked after {FAIL_WITHIN}s"
    return outcome[0]


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("blackhole", [False, True], ids=["refuse", "blackhole"])
def test_a_producer_cut_off_from_redis_gets_broker_unavailable_then_works_again(
    redis_server: RedisServer, proxy: Proxy, blackhole: bool, loop: str
) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")  # a dependency of errands except on Windows
    direct = redis_server.url(prefix="producer")
    url = proxy.rewrite(direct) + ("&socket_timeout=1" if blackhole else "")
    app = errands.App(url, settings=errands.Settings(loop=loop))
    inspect = errands.App(direct)
    try:
        # A pooled connection first: the cut must break a live one, as in a running service.
        assert enqueue_once(app, "before") == "ok"
        proxy.cut(blackhole=blackhole)
        during = [enqueue_once(app, f"during-{i}") for i in range(2)]
        proxy.restore()
        after = [enqueue_once(app, "after-0")]
        deadline = time.monotonic() + FAIL_WITHIN
        while after[-1] != "ok" and time.monotonic() < deadline:
            after.append(enqueue_once(app, f"after-{len(after)}"))
        counts = inspect.portal.call(inspect.call_broker, lambda b: b.counts())
    finally:
        app.close()
        inspect.close()

    assert during == [BrokerUnavailable.__name__] * 2
    assert after[-1] == "ok", f"enqueues after the link came back: {after}"
    assert set(after[:-1]) <= {BrokerUnavailable.__name__}, after
    # Stored: exactly what was acknowledged (no refused enqueue reached Redis).
    assert counts.total(JobState.AVAILABLE) == 1 + 1
