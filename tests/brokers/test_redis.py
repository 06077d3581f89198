"""The Redis broker beyond the shared contract: its start-up durability check, and what it
raises when Redis is full, gone, or has forgotten the scripts. Each test runs its own
redis-server (tests/brokers/redis_servers.py), since it reconfigures or restarts it."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from errands.brokers.contract import Claimed, ClaimOptions
from errands.brokers.redis import records
from errands.brokers.redis.broker import RedisBroker
from errands.errors import BrokerFull, BrokerUnavailable
from errands.job import JobSpec, new_job_id
from tests.brokers.redis_servers import command, free_port, running_server

DURABILITY = "errands.brokers.redis"


def spec(payload: bytes = b'{"v":1,"args":[]}') -> JobSpec:
    return JobSpec(id=new_job_id(), task="noop", queue="default", payload=payload)


async def opened(url: str) -> RedisBroker:
    broker = RedisBroker(url)
    await broker.open()
    return broker


async def test_an_aof_always_noeviction_redis_opens_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_server(tmp_path) as server, caplog.at_level(logging.WARNING, DURABILITY):
        broker = await opened(server.url())
        await broker.close()

    assert [r for r in caplog.records if r.name == DURABILITY] == []


async def test_a_redis_that_persists_nothing_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    no_aof = ["--appendonly", "no"]  # later arguments win
    with running_server(tmp_path, options=no_aof) as server, caplog.at_level(logging.WARNING):
        broker = await opened(server.url())
        await broker.close()

    [warning] = [r.getMessage() for r in caplog.records if r.name == DURABILITY]
    assert "persists nothing" in warning
    assert f"127.0.0.1:{server.port}" in warning


async def test_an_evicting_redis_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = ["--maxmemory-policy", "allkeys-lru"]
    with running_server(tmp_path, options=options) as server, caplog.at_level(logging.WARNING):
        broker = await opened(server.url())
        await broker.close()

    [warning] = [r.getMessage() for r in caplog.records if r.name == DURABILITY]
    assert "maxmemory-policy allkeys-lru" in warning


async def test_a_full_redis_refuses_an_enqueue_whole_with_broker_full(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        broker = await opened(server.url())
        try:
            [kept] = await broker.enqueue_many([spec()])
            used = int(command(server.port, "MEMORY", "STATS")[1])
            command(server.port, "CONFIG", "SET", "maxmemory", str(used + 200_000))
            big = [spec(b"x" * 20_000) for _ in range(50)]  # 1 MB: past the cap
            with pytest.raises(BrokerFull, match="out of memory"):
                await broker.enqueue_many(big)
            stored = await broker.get([s.id for s in big])
            counts = await broker.counts()
            assert stored == []  # nothing of the refused batch
            assert counts.total("available") == 1
            assert [job.id for job in await broker.get([kept.job_id])] == [kept.job_id]
        finally:
            await broker.close()


async def test_no_server_is_broker_unavailable_naming_the_address() -> None:
    port = free_port()
    broker = RedisBroker(f"redis://127.0.0.1:{port}/0?socket_connect_timeout=1")

    with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{port}"):
        await broker.open()
    await broker.close()


async def test_scripts_flushed_from_redis_are_loaded_again(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        broker = await opened(server.url())
        try:
            await broker.enqueue_many([spec()])
            command(server.port, "SCRIPT", "FLUSH")
            [again] = await broker.enqueue_many([spec()])
            assert not again.duplicate
            assert (await broker.counts()).total("available") == 2
        finally:
            await broker.close()


async def test_a_claim_sent_again_after_a_lost_reply_hands_back_the_same_jobs(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path) as server:
        broker = await opened(server.url())
        try:
            await broker.enqueue_many([spec() for _ in range(4)])
            options = ClaimOptions(["default"], n=2, lease=timedelta(seconds=30), worker_id="w")
            server.kill()
            with pytest.raises(BrokerUnavailable):
                await broker.claim(options)
            server.restart()
            # The lost claim is sent again first; it never ran, so it claims now...
            first = await broker.claim(options)
            # ...and had it run, sending it again would hand back the same jobs, not more.
            again = await broker._run("claim", *claim_args(first, options))
            counts = await broker.counts()
        finally:
            await broker.close()

    assert len(first) == 2
    assert [c.job.id for c in records.claimed(again)] == [c.job.id for c in first]
    assert (counts.total("running"), counts.total("available")) == (2, 2)


def claim_args(claimed: list[Claimed], options: ClaimOptions) -> list[object]:
    """The claim script's arguments of the claim that returned `claimed`."""
    base = claimed[0].lease.token.rsplit(".", 1)[0]  # each job's token is `<claim's>.<i>`
    lease_ms = int(options.lease.total_seconds() * 1000)
    return [options.n, lease_ms, options.worker_id, 1, *options.queues, base]
