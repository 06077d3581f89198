"""T8: SQLite under pressure. Another process holds the write lock (BEGIN EXCLUSIVE) during a
run: producers and workers wait, or get the typed BrokerUnavailable, and nothing is dropped.
The file reaches its size cap (max_page_count): enqueue raises the typed BrokerFull, stores
nothing of the refused batch, loses nothing acknowledged, and works again once there is room.
"""

from __future__ import annotations

import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest

import errands
from errands.brokers.sqlite.broker import SQLiteBroker
from tests.system.faults import faultapp
from tests.system.faults.acklog import AckLog
from tests.system.faults.conftest import Processes, Store, wait_until, worker_alive

pytestmark = pytest.mark.brokers("sqlite", reason="SQLite's write lock and size cap")

WITHIN = timedelta(seconds=60)


# -- the write lock held from outside ------------------------------------------------------------


def test_quick_lock_held_twice_for_2s(
    procs: Processes, store: Store, producer: errands.App
) -> None:
    check_lock_rounds(procs, store, rounds=2, hold=2.0, busy_ms=5000)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_full_lock_held_5_times_for_10s(
    procs: Processes, store: Store, producer: errands.App
) -> None:
    check_lock_rounds(procs, store, rounds=5, hold=10.0, busy_ms=15000)


def check_lock_rounds(
    procs: Processes, store: Store, *, rounds: int, hold: float, busy_ms: int
) -> None:
    """A producer (busy timeout `busy_ms`) and a worker (the default 30 s) run while the lock
    is held `rounds` times for `hold` seconds: both wait it out."""
    acks, marks = store.path.with_name("acks.txt"), store.path.with_name("marks.txt")
    acks.touch()
    marks.touch()
    worker = procs.worker("--pool", "thread", "--concurrency", "4", "--queues", "default")
    url = f"{store.url}?busy_timeout_ms={busy_ms}"
    args = ["--batch", "20", "--pause", "0.01"]
    producing = procs.script("producer", str(acks), "0", "8", *args, ERRANDS_BROKER_URL=url)

    def acked() -> int:
        assert producing.poll() is None, procs.log(producing)
        worker_alive(procs, worker)
        return len(AckLog.read(acks).ack_times())

    windows = []
    for _ in range(rounds):
        before = acked()
        wait_until(lambda n=before: acked() >= n + 10, within=WITHIN, what="producer progress")
        locker = procs.script("locker", str(store.path), str(hold), str(marks))
        assert locker.wait(timeout=hold + 60) == 0, procs.log(locker)
        lines = marks.read_text().split()
        windows.append((float(lines[-3]), float(lines[-1])))  # locked <t> released <t>
    after = acked()
    wait_until(lambda: acked() >= after + 10, within=WITHIN, what="progress after the last hold")
    procs.kill(producing)

    wait_until(
        lambda: store.unfinished() == 0 and worker.poll() is None,
        within=WITHIN,
        what="all jobs terminal",
    )
    worker_alive(procs, worker)
    log = AckLog.read(acks)
    assert log.untyped == []
    assert [e for g in log.groups.values() for e in g.errors] == []  # waited, never gave up
    completed = {
        r[0]: r[1]
        for r in store.query("SELECT idempotency_key, id FROM jobs WHERE state = ?", ("completed",))
    }
    missing = {k: i for k, i in log.acked.items() if completed.get(k) != i}
    assert missing == {}
    assert store.scalar("SELECT count(*) FROM jobs WHERE state != 'completed'") == 0
    assert store.scalar("SELECT count(*) FROM jobs WHERE crashes > 0") == 0

    times = log.ack_times()
    stalls = []
    for locked, released in windows:
        # No write got through while the lock was held (an ack just after `locked` may be of a
        # commit that came before it) and the producer resumed after it.
        assert [t for t in times if locked + 0.1 < t < released] == []
        resumed = min(t for t in times if t >= released)
        stalls.append(resumed - max(t for t in times if t <= locked + 0.1))
    print(
        f"\nT8 lock: {rounds} x BEGIN EXCLUSIVE for {hold:g}s; {len(log.acked)} jobs "
        f"acknowledged, all completed; producer stalls {', '.join(f'{s:.2f}s' for s in stalls)}; "
        f"typed errors 0, worker pid {worker.pid} alive"
    )
    assert all(s >= hold * 0.9 for s in stalls)


def test_lock_past_the_busy_timeout_raises_broker_unavailable(
    procs: Processes, store: Store, producer: errands.App
) -> None:
    marks = store.path.with_name("marks.txt")
    marks.touch()
    impatient = errands.App(f"{store.url}?busy_timeout_ms=300")
    impatient.portal.call(impatient.open_async)  # migrated before the lock: the enqueue meets it
    [earlier] = impatient.enqueue_many([faultapp.noop.call(0)])
    keys = [f"k{i}" for i in range(5)]
    calls = [faultapp.noop.options(idempotency_key=k).call(i) for i, k in enumerate(keys)]
    locker = procs.script("locker", str(store.path), "2.5", str(marks))
    wait_until(lambda: "locked" in marks.read_text(), within=WITHIN, what="the lock held")

    started = time.monotonic()
    with pytest.raises(errands.BrokerUnavailable, match="busy timeout"):
        impatient.enqueue_many(calls)
    waited = time.monotonic() - started
    assert 0.3 <= waited < 2.0
    assert "released" not in marks.read_text()  # it gave up while the lock was still held
    assert store.scalar("SELECT count(*) FROM jobs") == 1  # nothing of the refused call
    assert earlier.refresh().state is errands.JobState.AVAILABLE  # reads go on (WAL)

    assert locker.wait(timeout=30) == 0
    first = impatient.enqueue_many(calls)
    again = impatient.enqueue_many(calls)
    assert [h.duplicate for h in first] == [False] * 5
    assert [h.duplicate for h in again] == [True] * 5
    assert [h.id for h in again] == [h.id for h in first]
    assert store.scalar("SELECT count(*) FROM jobs") == 6
    impatient.close()


def test_worker_with_a_short_busy_timeout_outlives_the_lock(
    procs: Processes, store: Store, producer: errands.App
) -> None:
    marks = store.path.with_name("marks.txt")
    marks.touch()
    worker = procs.worker(
        "--pool", "thread", "--queues", "default",
        ERRANDS_BROKER_URL=f"{store.url}?busy_timeout_ms=300",
    )  # fmt: skip
    [before] = producer.enqueue_many([faultapp.noop.call(1)])
    assert before.result(timeout=WITHIN) == 1
    locker = procs.script("locker", str(store.path), "2.5", str(marks))
    # The idle worker claims at least once a second (idle_wait), so it meets the lock.
    wait_until(
        lambda: locker.poll() is not None or worker.poll() is not None,
        within=WITHIN,
        what="the lock released or the worker gone",
    )
    worker_alive(procs, worker)
    locker.wait(timeout=30)
    [after] = producer.enqueue_many([faultapp.noop.call(2)])
    assert after.result(timeout=WITHIN) == 2
    worker_alive(procs, worker)


# -- the size cap ------------------------------------------------------------------------------


def test_size_cap_raises_broker_full_then_enqueues_again_when_raised(
    procs: Processes, store: Store, producer: errands.App
) -> None:
    """The producer's connection is capped (SQLiteBroker(max_page_count=...): a sqlite URL
    cannot carry it); the worker's is not, so it keeps completing jobs."""
    worker = procs.worker("--pool", "thread", "--concurrency", "4", "--queues", "default")
    pages = store.scalar("PRAGMA page_count")
    cap = pages + 100
    capped = capped_app(store.path, cap)
    acked: dict[str, str] = {}
    full_at = None
    for n in range(10_000):
        keys = [f"g{n}-{j}" for j in range(20)]
        try:
            handles = capped.enqueue_many(
                [faultapp.noop.options(idempotency_key=k).call(n) for k in keys]
            )
        except errands.BrokerFull:
            full_at = n
            break
        acked.update({k: h.id for k, h in zip(keys, handles, strict=True)})
    assert full_at is not None, "the cap was never reached"
    refused = [f"g{full_at}-{j}" for j in range(20)]
    stored_keys = {r[0] for r in store.query("SELECT idempotency_key FROM jobs")}
    assert stored_keys.isdisjoint(refused)  # nothing of the refused batch
    assert set(acked) <= stored_keys

    # The worker goes on completing what it has.
    wait_until(lambda: drained(procs, worker, store), within=WITHIN, what="acked jobs completed")
    capped.close()

    roomy = capped_app(store.path, cap * 4)
    handles = roomy.enqueue_many(
        [faultapp.noop.options(idempotency_key=k).call(0) for k in refused]
    )
    assert not any(h.duplicate for h in handles)
    more = roomy.enqueue_many([faultapp.noop.call(i) for i in range(500)])
    assert all(h.result(timeout=WITHIN) == i for i, h in enumerate(more))
    wait_until(lambda: store.unfinished() == 0, within=WITHIN, what="all jobs terminal")
    roomy.close()
    worker_alive(procs, worker)
    completed = dict(store.query("SELECT idempotency_key, id FROM jobs WHERE state = 'completed'"))
    assert {k: completed.get(k) for k in acked} == acked
    assert store.scalar("SELECT count(*) FROM jobs WHERE state != 'completed'") == 0
    print(
        f"\nT8 size cap: max_page_count {cap} (file had {pages} pages); BrokerFull after "
        f"{len(acked)} acknowledged jobs, refused batch stored 0 of 20; after raising the cap "
        f"to {cap * 4}: refused batch stored, 500 more completed; worker pid {worker.pid} alive"
    )


def test_worker_running_as_the_file_fills_keeps_running_and_recovers(
    procs: Processes, store: Store, producer: errands.App
) -> None:
    """Every connection capped (the worker through faultapp's ERRANDS_TEST_MAX_PAGE_COUNT
    hook), as on a full disk; room comes back when an operator deletes old rows."""
    cap = fill_ballast(store, producer)
    worker = procs.worker(
        "--pool", "thread", "--concurrency", "4", "--queues", "default",
        ERRANDS_TEST_MAX_PAGE_COUNT=str(cap),
    )  # fmt: skip
    capped = capped_app(store.path, cap)
    acked = fill(capped)
    # The worker meets the full file: its finishes are refused, and kept to be sent again ...
    wait_until(
        lambda: "is full" in procs.log(worker) or worker.poll() is not None,
        within=WITHIN,
        what="the worker meets the full file",
    )
    # ... and its claim loop comes round at least once within idle_wait (1 s): real time.
    time.sleep(1.5)
    worker_alive(procs, worker)
    refused = store.scalar("SELECT count(*) FROM jobs WHERE state = 'running'")

    with store.connect() as operator:
        operator.execute("DELETE FROM jobs WHERE queue = 'ballast'")
    wait_until(lambda: drained(procs, worker, store), within=WITHIN, what="all jobs terminal")
    completed = dict(store.query("SELECT idempotency_key, id FROM jobs WHERE state = 'completed'"))
    assert {k: completed.get(k) for k in acked} == acked
    assert store.scalar("SELECT count(*) FROM jobs WHERE crashes > 0") == 0
    capped.close()
    print(
        f"\nT8 full file, worker capped too: {len(acked)} jobs acknowledged before BrokerFull; "
        f"{refused} jobs held running while their finishes were refused; all completed once "
        f"the ballast was deleted; worker pid {worker.pid} alive"
    )


def fill_ballast(store: Store, producer: errands.App) -> int:
    """2,000 jobs in a queue no worker serves, to delete later; returns a cap 50 pages above."""
    producer.enqueue_many([faultapp.noop.options(queue="ballast").call(i) for i in range(2000)])
    return int(store.scalar("PRAGMA page_count")) + 50


def fill(capped: errands.App) -> dict[str, str]:
    """Enqueue batches, then single jobs, until even one job is refused; the acknowledged."""
    acked: dict[str, str] = {}
    for size in (20, 1):
        for n in range(100_000):
            keys = [f"g{size}-{n}-{j}" for j in range(size)]
            calls = [faultapp.sleeper.options(idempotency_key=k).call(k, 0.01) for k in keys]
            try:
                handles = capped.enqueue_many(calls)
            except errands.BrokerFull:
                break
            acked.update({k: h.id for k, h in zip(keys, handles, strict=True)})
    return acked


def drained(procs: Processes, worker: subprocess.Popen[bytes], store: Store) -> bool:
    worker_alive(procs, worker)
    return store.unfinished() == 0


def capped_app(path: Path, pages: int) -> errands.App:
    return errands.App(broker=SQLiteBroker(path, max_page_count=pages))
