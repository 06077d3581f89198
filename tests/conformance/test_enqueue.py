"""enqueue_many: what is stored, in which state, and what each spec's Enqueued says."""

from __future__ import annotations

from datetime import timedelta

from errands.brokers.contract import Broker, ClaimOptions, Enqueued
from errands.job import JobState
from errands.outcome import Completed
from errands.testing import FakeClock

from .conftest import LEASE, claim_one, enqueue, get_one, spec


async def test_enqueued_job_is_available_at_once_with_every_field_of_its_spec(
    broker: Broker, clock: FakeClock
) -> None:
    asked = spec(
        "mail.send",
        "mail",
        priority=5,
        max_attempts=7,
        max_crashes=2,
        result_ttl=timedelta(hours=1),
    )
    [job_id] = await enqueue(broker, asked)
    job = await get_one(broker, job_id)
    assert job_id == asked.id
    assert (job.task, job.queue, job.priority) == ("mail.send", "mail", 5)
    assert job.payload == asked.payload
    assert (job.max_attempts, job.max_crashes, job.result_ttl) == (7, 2, timedelta(hours=1))
    assert job.state == JobState.AVAILABLE
    assert (job.attempt, job.failures, job.crashes) == (0, 0, 0)
    assert job.enqueued_at == clock.now()
    assert job.scheduled_at == clock.now()
    assert (job.worker_id, job.result, job.finished_at, job.errors) == (None, None, None, ())


async def test_enqueue_returns_one_enqueued_per_spec_in_input_order(broker: Broker) -> None:
    specs = [spec(), spec("other"), spec(queue="mail")]
    enqueued = await broker.enqueue_many(specs)
    assert enqueued == [Enqueued(s.id, duplicate=False) for s in specs]
    stored = await broker.get([s.id for s in specs])
    assert [(job.id, job.task, job.queue) for job in stored] == [
        (s.id, s.task, s.queue) for s in specs
    ]


async def test_job_with_a_future_scheduled_at_is_stored_scheduled(
    broker: Broker, clock: FakeClock
) -> None:
    due = clock.now() + timedelta(minutes=10)
    [job_id] = await enqueue(broker, spec(scheduled_at=due))
    job = await get_one(broker, job_id)
    assert (job.state, job.scheduled_at) == (JobState.SCHEDULED, due)
    assert await broker.claim(ClaimOptions(["default"], n=10, lease=LEASE, worker_id="w1")) == []


async def test_job_with_a_past_scheduled_at_is_available_at_once(
    broker: Broker, clock: FakeClock
) -> None:
    [job_id] = await enqueue(broker, spec(scheduled_at=clock.now() - timedelta(hours=1)))
    assert (await get_one(broker, job_id)).state == JobState.AVAILABLE
    assert (await claim_one(broker)).job.id == job_id


async def test_payload_bytes_are_stored_and_handed_out_unchanged(broker: Broker) -> None:
    raw = b"\x80\x04\x95 not json at all \x00\xff"
    [job_id] = await enqueue(broker, spec(payload=raw))
    assert (await get_one(broker, job_id)).payload == raw
    assert (await claim_one(broker)).job.payload == raw


async def test_empty_batch_stores_nothing(broker: Broker) -> None:
    assert await broker.enqueue_many([]) == []
    counts = await broker.counts()
    assert sum(counts.total(state) for state in JobState) == 0


async def test_enqueued_jobs_are_counted_by_queue_and_state(
    broker: Broker, clock: FakeClock
) -> None:
    later = clock.now() + timedelta(hours=1)
    await enqueue(broker, spec(), spec(), spec(queue="mail"), spec(scheduled_at=later))
    counts = await broker.counts()
    assert counts.by_queue["default"][JobState.AVAILABLE] == 2
    assert counts.by_queue["default"][JobState.SCHEDULED] == 1
    assert counts.by_queue["mail"][JobState.AVAILABLE] == 1
    assert counts.total(JobState.AVAILABLE) == 3


async def test_resending_the_id_of_a_running_job_changes_nothing(broker: Broker) -> None:
    original = spec(idempotency_key=None)
    await enqueue(broker, original)
    claimed = await claim_one(broker)
    assert await broker.enqueue_many([original]) == [Enqueued(original.id, duplicate=True)]
    job = await get_one(broker, original.id)
    assert (job.state, job.attempt) == (JobState.RUNNING, 1)
    assert await broker.finish([Completed(claimed.lease, result=b"r")]) == [True]


async def test_resending_a_batch_stores_only_the_specs_it_did_not_store_before(
    broker: Broker,
) -> None:
    first, second = spec(), spec()
    await enqueue(broker, first)
    assert await broker.enqueue_many([first, second]) == [
        Enqueued(first.id, duplicate=True),
        Enqueued(second.id, duplicate=False),
    ]
    assert [job.id for job in await broker.get([first.id, second.id])] == [first.id, second.id]


async def test_resending_the_id_of_a_finished_job_does_not_run_it_again(broker: Broker) -> None:
    original = spec()
    await enqueue(broker, original)
    claimed = await claim_one(broker)
    await broker.finish([Completed(claimed.lease, result=b"r")])
    assert await broker.enqueue_many([original]) == [Enqueued(original.id, duplicate=True)]
    job = await get_one(broker, original.id)
    assert (job.state, job.result) == (JobState.COMPLETED, b"r")
    assert await broker.claim(ClaimOptions(["default"], n=1, lease=LEASE, worker_id="w")) == []
