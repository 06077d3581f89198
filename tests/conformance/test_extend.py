"""extend: keeping held leases alive, and what rides along (heartbeat, progress, cancels)."""

from __future__ import annotations

from datetime import timedelta

from errands.brokers.contract import Broker, ClaimOptions
from errands.job import JobState, Progress
from errands.lease import Lease
from errands.outcome import Completed, Released
from errands.testing import FakeClock

from .conftest import LEASE, claim_one, enqueue, get_one, heartbeat, rescue, spec


async def test_extend_pushes_the_lease_expiry_to_now_plus_lease(
    broker: Broker, clock: FakeClock
) -> None:
    await enqueue(broker, spec())
    claimed = await claim_one(broker)
    clock.advance(timedelta(seconds=20))
    extended = await broker.extend(
        [claimed.lease], timedelta(seconds=45), heartbeat=heartbeat(clock), progress={}
    )
    expires_at = clock.now() + timedelta(seconds=45)
    assert extended.leases == [claimed.lease.extended_to(expires_at)]
    assert extended.cancel_requested == []
    assert (await get_one(broker, claimed.job.id)).lease_expires_at == expires_at


async def test_an_extended_lease_outlives_its_first_expiry(
    broker: Broker, clock: FakeClock
) -> None:
    await enqueue(broker, spec())
    claimed = await claim_one(broker)
    for _ in range(5):  # five times past the first lease, extended every 20 s
        clock.advance(timedelta(seconds=20))
        extended = await broker.extend(
            [claimed.lease], LEASE, heartbeat=heartbeat(clock), progress={}
        )
        assert [lease.job_id for lease in extended.leases] == [claimed.job.id]
        assert (await rescue(broker, clock, limit=100)).total == 0
    assert (await get_one(broker, claimed.job.id)).state == JobState.RUNNING
    assert await broker.finish([Completed(claimed.lease, result=b"done")]) == [True]


async def test_extend_leaves_out_a_lease_whose_token_no_longer_holds(
    broker: Broker, clock: FakeClock
) -> None:
    await enqueue(broker, spec(), spec())
    [lost, kept] = await broker.claim(ClaimOptions(["default"], n=2, lease=LEASE, worker_id="w1"))
    forged = Lease(kept.job.id, kept.lease.attempt, "not-the-token", kept.lease.expires_at)
    assert await broker.finish([Completed(lost.lease, result=b"")]) == [True]
    clock.advance(timedelta(seconds=10))
    extended = await broker.extend(
        [lost.lease, forged, kept.lease], LEASE, heartbeat=heartbeat(clock), progress={}
    )
    assert extended.leases == [kept.lease.extended_to(clock.now() + LEASE)]
    assert (await get_one(broker, lost.job.id)).state == JobState.COMPLETED


async def test_extend_leaves_out_the_lease_of_an_earlier_attempt(
    broker: Broker, clock: FakeClock
) -> None:
    await enqueue(broker, spec())
    first = await claim_one(broker, worker_id="w1")
    await broker.finish([Released(first.lease)])
    second = await claim_one(broker, worker_id="w2")
    extended = await broker.extend([first.lease], LEASE, heartbeat=heartbeat(clock), progress={})
    assert extended.leases == []
    assert (await get_one(broker, second.job.id)).lease_expires_at == second.lease.expires_at


async def test_extend_reports_a_pending_cancel_and_still_extends_the_lease(
    broker: Broker, clock: FakeClock
) -> None:
    await enqueue(broker, spec(), spec())
    [doomed, other] = await broker.claim(
        ClaimOptions(["default"], n=2, lease=LEASE, worker_id="w1")
    )
    await broker.cancel([doomed.job.id], reason="requested")
    clock.advance(timedelta(seconds=10))
    extended = await broker.extend(
        [doomed.lease, other.lease], LEASE, heartbeat=heartbeat(clock), progress={}
    )
    assert extended.cancel_requested == [doomed.job.id]
    assert sorted(lease.job_id for lease in extended.leases) == sorted(
        [doomed.job.id, other.job.id]
    )


async def test_extend_stores_progress_on_the_job(broker: Broker, clock: FakeClock) -> None:
    await enqueue(broker, spec(), spec())
    [busy, quiet] = await broker.claim(ClaimOptions(["default"], n=2, lease=LEASE, worker_id="w1"))
    await broker.extend(
        [busy.lease, quiet.lease],
        LEASE,
        heartbeat=heartbeat(clock),
        progress={busy.job.id: Progress(0.5, "halfway")},
    )
    assert (await get_one(broker, busy.job.id)).progress == Progress(0.5, "halfway")
    assert (await get_one(broker, quiet.job.id)).progress is None


async def test_extend_records_the_heartbeat_of_its_worker(broker: Broker, clock: FakeClock) -> None:
    await enqueue(broker, spec())
    claimed = await claim_one(broker)
    sent = heartbeat(clock, "w1", running=1)
    clock.advance(timedelta(seconds=3))
    await broker.extend([claimed.lease], LEASE, heartbeat=sent, progress={})
    [seen] = await broker.workers()
    assert (seen.id, seen.hostname, seen.pid, seen.queues) == ("w1", "host-a", 4242, ("default",))
    assert (seen.concurrency, seen.running, seen.started_at) == (4, 1, sent.started_at)
    assert seen.seen_at == clock.now()


async def test_extend_of_no_leases_still_records_the_heartbeat(
    broker: Broker, clock: FakeClock
) -> None:
    extended = await broker.extend([], LEASE, heartbeat=heartbeat(clock, "idle"), progress={})
    assert (extended.leases, extended.cancel_requested) == ([], [])
    assert [w.id for w in await broker.workers()] == ["idle"]
