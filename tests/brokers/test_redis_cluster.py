"""The Redis broker on Redis Cluster (`?cluster=1`): the conformance suite's core areas, and a
real worker draining 2,000 jobs, on a three-master cluster of the module's own
(tests/brokers/redis_servers.py; never the shared Redis).

How the conformance tests run here: the test functions of six area modules of
tests/conformance (enqueue, claim, finish, extend, rescue, idempotency) are bound into this
module's namespace as `test_<area>__<name>`. pytest collects a module's functions by the names
the module holds, so each runs here, unchanged, with this module's fixtures in place of the
kit's: `broker` (opened on the cluster URL, on the test's FakeClock, closed after), `broker_url`
(for the tests that open more brokers, in threads and processes) and `clock`. Each test gets a
key prefix of its own on the one cluster. Nothing is registered in tests/brokers/registry.py, so
the conformance and system suites are untouched, and there is no nested pytest run: a failure
shows here as the conformance test's own assertion. A test needing a capability the broker
lacks skips, as in the kit.

About 10 s: 4 s to start and join the cluster, 66 conformance tests, a 2,000-job drain.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import errands
from errands import JobState
from errands.brokers import from_url
from errands.brokers.contract import Broker
from errands.testing import FakeClock
from tests.brokers.redis_servers import RedisCluster, command, running_cluster
from tests.conformance import (
    test_claim,
    test_enqueue,
    test_extend,
    test_finish,
    test_idempotency,
    test_rescue,
)
from tests.conformance.conftest import spec
from tests.conformance.kit import lacks
from tests.system import sysapp
from tests.system.chaos.checker import fetch_jobs, wait_terminal
from tests.system.conftest import Workers
from tests.system.ledger import Ledger

AREAS: tuple[ModuleType, ...] = (
    test_enqueue,
    test_claim,
    test_finish,
    test_extend,
    test_rescue,
    test_idempotency,
)


def _bind(areas: tuple[ModuleType, ...]) -> dict[str, Callable[..., Any]]:
    """Each area's test functions under `test_<area>__<name>` (names stay unique across
    areas, and say where the test lives)."""
    found = {}
    for module in areas:
        area = module.__name__.rsplit(".", 1)[1].removeprefix("test_")
        for name, value in vars(module).items():
            if name.startswith("test_") and callable(value):
                found[f"test_{area}__{name.removeprefix('test_')}"] = value
    return found


CONFORMANCE = _bind(AREAS)
globals().update(CONFORMANCE)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """Three masters, no replicas, for the whole module; every node SIGKILLed at the end."""
    with running_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    """Time for the broker under test; it moves only when a test advances it."""
    return FakeClock()


@pytest.fixture
def broker_url(cluster: RedisCluster) -> str:
    """The cluster, under a key prefix of this test's own."""
    return cluster.url(prefix=f"conformance-{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def broker(
    broker_url: str, clock: FakeClock, request: pytest.FixtureRequest
) -> AsyncIterator[Broker]:
    """The conformance kit's `broker`, on the cluster: opened, and closed after the test."""
    opened = from_url(broker_url, clock=clock)
    for marker in request.node.iter_markers("needs"):
        why = lacks(opened.capabilities, marker.args[0])
        if why is not None:
            pytest.skip(why)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def test_the_core_conformance_areas_are_all_here() -> None:
    """The binding above found every area's tests (a renamed module would otherwise silently
    drop out of this run)."""
    per_area = Counter(name.split("__")[0] for name in CONFORMANCE)
    assert set(per_area) == {f"test_{m.__name__.rsplit('_', 1)[1]}" for m in AREAS}
    assert all(n >= 5 for n in per_area.values()), per_area


def owner(cluster: RedisCluster, slot: int) -> int:
    """The client port of the node serving hash slot `slot`."""
    for start, end, (_host, port, *_), *_replicas in command(cluster.ports[0], "CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return int(port)
    raise AssertionError(f"no node serves slot {slot}")


async def test_a_broker_opened_through_one_node_writes_to_the_node_serving_its_keys(
    cluster: RedisCluster, clock: FakeClock
) -> None:
    """Routing is the cluster client's: the keys of a prefix whose slot another node serves
    land on that node, through the first node's address."""
    first = cluster.ports[0]
    for _ in range(100):
        url = cluster.url(prefix=f"routed-{uuid.uuid4().hex[:12]}")
        broker: Any = from_url(url, clock=clock)
        slot = int(command(first, "CLUSTER", "KEYSLOT", broker.keys.meta))
        if owner(cluster, slot) != first:
            break
    await broker.open()
    try:
        [stored] = await broker.enqueue_many([spec()])
        assert [job.id for job in await broker.get([stored.job_id])] == [stored.job_id]
    finally:
        await broker.close()
    keys = {port: int(command(port, "CLUSTER", "COUNTKEYSINSLOT", slot)) for port in cluster.ports}
    assert keys[owner(cluster, slot)] > 0
    assert keys[first] == 0


DRAIN = 2_000
BATCH = 500


def test_one_worker_drains_2000_jobs_enqueued_through_the_cluster(
    cluster: RedisCluster, tmp_path: Path
) -> None:
    prefix = f"drain-{uuid.uuid4().hex[:12]}"
    ledger = Ledger(tmp_path / "ledger.txt")
    # The producer reaches the cluster through one node and the worker through another:
    # any node's address will do.
    app = errands.App(cluster.url(prefix=prefix, node=0))
    workers = Workers(tmp_path, cluster.url(prefix=prefix, node=2), ledger)
    try:
        ids = []
        for start in range(0, DRAIN, BATCH):
            calls = [sysapp.sleeper.call(f"d{i:04d}", 0) for i in range(start, start + BATCH)]
            ids += [handle.id for handle in app.enqueue_many(calls)]
        worker = workers.start("--pool", "thread", "--concurrency", "16", lease=10)
        wait_terminal(app, ids, timedelta(seconds=60))
        jobs = fetch_jobs(app, ids)
        assert worker.poll() is None, (tmp_path / "worker-0.log").read_text()
    finally:
        workers.stop_all()
        app.close()

    assert Counter(job.state for job in jobs) == Counter({JobState.COMPLETED: DRAIN})
    assert [job.id for job in jobs] == ids
    ends = ledger.ends()
    assert set(ends) == {f"d{i:04d}" for i in range(DRAIN)}
    assert set(ends.values()) == {1}  # each ran once: no lease lapsed in a clean run
