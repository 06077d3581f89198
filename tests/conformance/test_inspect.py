"""Inspecting: get, list_jobs (keyset pages, newest first), counts and workers."""

from __future__ import annotations

from datetime import timedelta

from errands.brokers.contract import Broker, ClaimOptions, JobQuery
from errands.job import JobState
from errands.outcome import Completed
from errands.testing import FakeClock

from .conftest import LEASE, claim_one, enqueue, heartbeat, spec


async def test_get_returns_jobs_in_the_order_asked_and_leaves_out_unknown_ids(
    broker: Broker,
) -> None:
    [a, b, c] = await enqueue(broker, spec(), spec(), spec())
    unknown = spec().id
    jobs = await broker.get([c, unknown, a, b])
    assert [job.id for job in jobs] == [c, a, b]


async def test_get_of_no_ids_returns_nothing(broker: Broker) -> None:
    await enqueue(broker, spec())
    assert await broker.get([]) == []


async def test_list_jobs_returns_the_newest_first(broker: Broker) -> None:
    job_ids = await enqueue(broker, *[spec() for _ in range(4)])
    page = await broker.list_jobs(JobQuery())
    assert [job.id for job in page.jobs] == list(reversed(job_ids))
    assert page.next_cursor is None


async def test_pages_of_list_jobs_cover_every_job_exactly_once(broker: Broker) -> None:
    job_ids = await enqueue(broker, *[spec() for _ in range(25)])
    seen: list[str] = []
    sizes: list[int] = []
    cursor = None
    for _ in range(10):  # more pages than needed; the loop ends at the last one
        page = await broker.list_jobs(JobQuery(limit=10, before_id=cursor))
        seen.extend(job.id for job in page.jobs)
        sizes.append(len(page.jobs))
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sizes == [10, 10, 5]
    assert seen == sorted(job_ids, reverse=True)


async def test_list_jobs_filters_by_queue(broker: Broker) -> None:
    [mail, _] = await enqueue(broker, spec(queue="mail"), spec(queue="sms"))
    page = await broker.list_jobs(JobQuery(queue="mail"))
    assert [job.id for job in page.jobs] == [mail]


async def test_list_jobs_filters_by_task(broker: Broker) -> None:
    [_, report] = await enqueue(broker, spec("send"), spec("report"))
    page = await broker.list_jobs(JobQuery(task="report"))
    assert [job.id for job in page.jobs] == [report]


async def test_list_jobs_filters_by_any_of_several_states(broker: Broker, clock: FakeClock) -> None:
    later = clock.now() + timedelta(hours=1)
    [running, available, scheduled] = await enqueue(
        broker, spec(), spec(), spec(scheduled_at=later)
    )
    assert (await claim_one(broker)).job.id == running
    page = await broker.list_jobs(JobQuery(states=(JobState.RUNNING, JobState.SCHEDULED)))
    assert [job.id for job in page.jobs] == [scheduled, running]
    only = await broker.list_jobs(JobQuery(states=(JobState.AVAILABLE,)))
    assert [job.id for job in only.jobs] == [available]


async def test_list_jobs_filters_combine(broker: Broker) -> None:
    [_, wanted, _] = await enqueue(broker, spec("a", "mail"), spec("b", "mail"), spec("b", "sms"))
    page = await broker.list_jobs(JobQuery(queue="mail", task="b", states=(JobState.AVAILABLE,)))
    assert [job.id for job in page.jobs] == [wanted]


async def test_paging_a_filtered_list_covers_only_matching_jobs(broker: Broker) -> None:
    mail = await enqueue(broker, *[spec(queue=q) for q in ["mail", "sms"] * 6])
    wanted = [job_id for job_id, q in zip(mail, ["mail", "sms"] * 6, strict=True) if q == "mail"]
    first = await broker.list_jobs(JobQuery(queue="mail", limit=4))
    assert first.next_cursor is not None
    rest = await broker.list_jobs(JobQuery(queue="mail", limit=4, before_id=first.next_cursor))
    assert rest.next_cursor is None
    assert [job.id for job in first.jobs + rest.jobs] == sorted(wanted, reverse=True)


async def test_counts_reports_jobs_per_queue_and_state(broker: Broker, clock: FakeClock) -> None:
    later = clock.now() + timedelta(hours=1)
    await enqueue(broker, spec(), spec(), spec(), spec(scheduled_at=later), spec(queue="mail"))
    [done, _] = await broker.claim(ClaimOptions(["default"], n=2, lease=LEASE, worker_id="w1"))
    await broker.finish([Completed(done.lease, result=b"")])
    counts = await broker.counts()
    default = counts.by_queue["default"]
    assert default.get(JobState.COMPLETED, 0) == 1
    assert default.get(JobState.RUNNING, 0) == 1
    assert default.get(JobState.AVAILABLE, 0) == 1
    assert default.get(JobState.SCHEDULED, 0) == 1
    assert default.get(JobState.FAILED, 0) == 0
    assert counts.by_queue["mail"].get(JobState.AVAILABLE, 0) == 1
    assert counts.total(JobState.AVAILABLE) == 2
    assert counts.paused == frozenset()


async def test_counts_of_chosen_queues_leaves_out_the_others(broker: Broker) -> None:
    await enqueue(broker, spec(queue="mail"), spec(queue="sms"), spec(queue="sms"))
    counts = await broker.counts(["sms"])
    assert "mail" not in counts.by_queue
    assert counts.by_queue["sms"].get(JobState.AVAILABLE, 0) == 2


async def test_counts_give_each_queue_the_due_time_of_its_oldest_waiting_job(
    broker: Broker, clock: FakeClock
) -> None:
    start = clock.now()
    await enqueue(broker, spec(), spec(queue="mail", priority=0), spec(queue="done"))
    clock.advance(timedelta(seconds=10))
    # Younger and of a higher priority: it is claimed first, yet the older one waits longest.
    await enqueue(broker, spec(), spec(queue="mail", priority=5))
    await enqueue(broker, spec(queue="later", scheduled_at=clock.now() + timedelta(hours=1)))
    await claim_one(broker)  # the oldest of default: running is not waiting
    finished = await claim_one(broker, "done")
    await broker.finish([Completed(finished.lease, result=b"")])

    counts = await broker.counts()

    assert counts.oldest_waiting == {"default": start + timedelta(seconds=10), "mail": start}


async def test_a_due_job_not_yet_promoted_waits_since_its_due_time(
    broker: Broker, clock: FakeClock
) -> None:
    due = clock.now() + timedelta(minutes=1)
    await enqueue(broker, spec(queue="later", scheduled_at=due))
    assert "later" not in (await broker.counts()).oldest_waiting
    clock.advance(timedelta(minutes=5))  # due, and no promotion has run
    assert (await broker.counts()).oldest_waiting == {"later": due}


async def test_counts_of_chosen_queues_give_only_their_oldest_waiting_jobs(
    broker: Broker, clock: FakeClock
) -> None:
    await enqueue(broker, spec(queue="mail"), spec(queue="sms"))
    counts = await broker.counts(["sms"])
    assert counts.oldest_waiting == {"sms": clock.now()}


async def test_workers_is_empty_before_any_heartbeat(broker: Broker) -> None:
    await enqueue(broker, spec())
    await claim_one(broker)
    assert await broker.workers() == []


async def test_workers_lists_each_worker_once_with_its_latest_heartbeat(
    broker: Broker, clock: FakeClock
) -> None:
    await broker.extend([], LEASE, heartbeat=heartbeat(clock, "w1", running=0), progress={})
    await broker.extend([], LEASE, heartbeat=heartbeat(clock, "w2", running=0), progress={})
    clock.advance(timedelta(seconds=10))
    await broker.extend([], LEASE, heartbeat=heartbeat(clock, "w1", running=3), progress={})
    workers = sorted(await broker.workers(), key=lambda w: w.id)
    assert [(w.id, w.running, w.seen_at) for w in workers] == [
        ("w1", 3, clock.now()),
        ("w2", 0, clock.now() - timedelta(seconds=10)),
    ]


async def test_workers_leaves_out_a_worker_silent_for_a_day(
    broker: Broker, clock: FakeClock
) -> None:
    await broker.extend([], LEASE, heartbeat=heartbeat(clock, "gone"), progress={})
    clock.advance(timedelta(days=1))
    await broker.extend([], LEASE, heartbeat=heartbeat(clock, "alive"), progress={})
    assert [w.id for w in await broker.workers()] == ["alive"]
