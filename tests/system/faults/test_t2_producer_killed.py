"""T2 (G1): a producer SIGKILLed during single and batch enqueues loses nothing it was told was
stored, never stores part of a batch, and a resubmit with the same idempotency keys stores no
duplicate."""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

import errands
from tests.system.faults import faultapp
from tests.system.faults.acklog import AckLog, Group
from tests.system.faults.conftest import Processes, Store, wait_until

pytestmark = pytest.mark.brokers("sqlite", reason="checks the SQLite file through sqlite3")

BATCH = 50
UP = timedelta(seconds=30)


@dataclass
class Kills:
    """Where each SIGKILL landed: inside an enqueue call (its group) or between calls."""

    in_flight: list[str] = field(default_factory=list)
    between: int = 0


def test_quick_producer_killed_5_times(
    procs: Processes, store: Store, producer: errands.App, tmp_path: Path
) -> None:
    check_producer_kills(procs, store, producer, tmp_path, kills=5, seed=2)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_full_producer_killed_20_times(
    procs: Processes, store: Store, producer: errands.App, tmp_path: Path
) -> None:
    check_producer_kills(procs, store, producer, tmp_path, kills=20, seed=20)


def check_producer_kills(
    procs: Processes, store: Store, producer: errands.App, tmp_path: Path, *, kills: int, seed: int
) -> None:
    started = time.monotonic()
    acks = tmp_path / "acks.txt"
    acks.touch()
    where = kill_producer_repeatedly(procs, acks, kills=kills, seed=seed)
    log = AckLog.read(acks)
    assert log.untyped == []

    stored = {
        row["idempotency_key"]: row["id"]
        for row in store.query("SELECT id, idempotency_key FROM jobs")
    }
    keys_stored = Counter(row[0] for row in store.query("SELECT idempotency_key FROM jobs"))
    # Acknowledged is a subset of stored: each acked key holds the very id the producer got.
    lost = {k: i for k, i in log.acked.items() if stored.get(k) != i}
    assert lost == {}, f"{len(lost)} acknowledged jobs missing"
    assert [k for k, n in keys_stored.items() if n > 1] == []
    # Nothing stored that nobody asked for, and every group all or nothing.
    asked = {k for g in log.groups.values() for k in g.keys}
    assert set(stored) <= asked
    per_group = Counter(key.rsplit("-", 1)[0] for key in stored)
    partial = {
        g.name: per_group[g.name]
        for g in log.groups.values()
        if per_group[g.name] not in (0, g.size)
    }
    assert partial == {}, f"groups stored in part: {partial}"
    assert store.scalar("PRAGMA integrity_check") == "ok"

    # Resubmit every acknowledged key: all duplicates of the acknowledged ids, no new row.
    before = store.scalar("SELECT count(*) FROM jobs")
    acked = list(log.acked.items())
    for start in range(0, len(acked), 500):
        chunk = acked[start : start + 500]
        handles = producer.enqueue_many(
            [faultapp.noop.options(idempotency_key=k).call(0) for k, _ in chunk]
        )
        assert all(h.duplicate for h in handles)
        assert [h.id for h in handles] == [job_id for _, job_id in chunk]
    assert store.scalar("SELECT count(*) FROM jobs") == before

    # The groups cut short: resent whole, each comes back all duplicate or all new.
    committed_unacked = resend_unacked(producer, log.unacked(), per_group)
    assert store.scalar("SELECT count(*) FROM jobs") == len(asked)
    keys_after = Counter(row[0] for row in store.query("SELECT idempotency_key FROM jobs"))
    assert set(keys_after) == asked
    assert max(keys_after.values()) == 1

    batches = sum(1 for g in log.groups.values() if g.size > 1 and g.acked_at is not None)
    print(
        f"\nT2 {kills} kills in {time.monotonic() - started:.1f}s: "
        f"{len(log.groups)} enqueue calls ({batches} batches of {BATCH} acknowledged), "
        f"{len(log.acked)} jobs acknowledged, {before} stored before the resubmit; "
        f"kills inside an enqueue call: {len(where.in_flight)} "
        f"({len(committed_unacked)} of them had committed: stored but never acknowledged), "
        f"between calls: {where.between}; lost 0, partial batches 0, duplicates 0"
    )


def kill_producer_repeatedly(procs: Processes, acks: Path, *, kills: int, seed: int) -> Kills:
    """Start the producer, let it work, SIGKILL it at a random moment; `kills` times.

    Most kills wait (briefly) for an enqueue call to be in flight, so they land inside
    single and batch enqueues rather than between them.
    """
    rng = random.Random(seed)
    where = Kills()
    for run in range(kills):
        proc = procs.script("producer", str(acks), str(run), str(seed * 1000 + run))
        wait_until(
            lambda run=run, proc=proc: f"ack r{run}" in tail(acks) or proc.poll() is not None,
            within=UP,
            what=f"producer run {run} acknowledges an enqueue",
        )
        assert proc.poll() is None, procs.log(proc)
        time.sleep(rng.uniform(0, 0.3))  # the fault's random moment, not a wait for a state
        target = rng.choice(["b", "s", "any"])
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and not in_flight(acks, run, target):
            time.sleep(0.0005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        group = in_flight(acks, run, "any")
        if group:
            where.in_flight.append(group)
        else:
            where.between += 1
    return where


def resend_unacked(producer: errands.App, groups: list[Group], stored: Counter[str]) -> list[str]:
    committed = []
    for group in groups:
        handles = producer.enqueue_many(
            [faultapp.noop.options(idempotency_key=k).call(0) for k in group.keys]
        )
        duplicates = {h.duplicate for h in handles}
        assert duplicates == {stored[group.name] == group.size}, group.name
        if stored[group.name]:
            committed.append(group.name)
    return committed


def tail(path: Path, size: int = 16384) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - size))
        return f.read().decode(errors="replace")


def in_flight(acks: Path, run: int, target: str) -> str | None:
    """The group of run `run` whose enqueue call is under way (its intent is the last line)."""
    lines = tail(acks, 4096).splitlines()
    if not lines:
        return None
    kind, group, *_ = lines[-1].split(" ")
    prefix = f"r{run}" + ("" if target == "any" else target)
    return group if kind == "intent" and group.startswith(prefix) else None
