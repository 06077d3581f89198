"""The test-owned Redis servers of tests/brokers/redis_servers.py do what the fault tests rely
on: a SIGKILLed server restarted on its port still holds every write it acknowledged (AOF,
appendfsync always), nothing is left running after the fixture, and the cluster serves every
slot. Checked with redis-py directly, as a user would."""

from __future__ import annotations

import socket
from pathlib import Path

import redis
from redis.cluster import RedisCluster as ClusterClient
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from tests.brokers.redis_servers import (
    HOST,
    RedisCluster,
    RedisServer,
    command,
    running_server,
)
from tests.brokers.redis_servers import redis_cluster as redis_cluster
from tests.brokers.redis_servers import redis_server as redis_server


def client(server: RedisServer) -> redis.Redis:
    return redis.Redis(host=HOST, port=server.port, socket_timeout=5)


def refuses(port: int) -> bool:
    """Nothing listens on 127.0.0.1:`port`."""
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_a_sigkilled_server_restarted_on_its_port_keeps_every_acknowledged_write(
    redis_server: RedisServer,
) -> None:
    before = client(redis_server)
    assert before.config_get("appendfsync") == {"appendfsync": "always"}
    before.set("kept", "value")
    for _ in range(100):
        before.incr("counter")
    before.close()
    pid, port = redis_server.proc.pid if redis_server.proc else None, redis_server.port

    redis_server.kill()
    assert refuses(port)
    redis_server.restart()

    after = client(redis_server)
    assert redis_server.port == port
    assert redis_server.proc is not None
    assert redis_server.proc.pid != pid  # a new process
    assert after.get("kept") == b"value"
    assert after.get("counter") == b"100"
    after.close()


def test_the_servers_url_names_its_port_and_prefix(redis_server: RedisServer) -> None:
    assert redis_server.url(prefix="t1") == f"redis://127.0.0.1:{redis_server.port}/0?prefix=t1"
    assert redis_server.url(prefix="t1", db=3).endswith("/3?prefix=t1")


def test_a_server_is_killed_when_its_context_ends(tmp_path: Path) -> None:
    with running_server(tmp_path / "r") as server:
        assert command(server.port, "PING") == "PONG"
        proc = server.proc
    assert proc is not None
    assert proc.poll() is not None
    assert refuses(server.port)


def test_the_cluster_accepts_a_key_in_every_slot(redis_cluster: RedisCluster) -> None:
    # One key per slot: the first name of the form k<i> that hashes to it.
    keys: dict[int, str] = {}
    i = 0
    while len(keys) < REDIS_CLUSTER_HASH_SLOTS:
        name = f"k{i}"
        keys.setdefault(key_slot(name.encode()), name)
        i += 1
    cluster = ClusterClient(host=HOST, port=redis_cluster.ports[0], socket_timeout=5)
    try:
        pipe = cluster.pipeline()
        for slot, name in keys.items():
            pipe.set(name, slot)
        assert all(pipe.execute())
        pipe = cluster.pipeline()
        for name in keys.values():
            pipe.get(name)
        assert [int(v) for v in pipe.execute()] == list(keys)
    finally:
        cluster.close()
    # Spread over all three masters: each holds its share of the slots.
    sizes = [command(port, "DBSIZE") for port in redis_cluster.ports]
    assert sum(sizes) == REDIS_CLUSTER_HASH_SLOTS
    assert all(size > REDIS_CLUSTER_HASH_SLOTS // 4 for size in sizes), sizes


def test_the_cluster_url_names_a_node_and_asks_for_cluster_mode(
    redis_cluster: RedisCluster,
) -> None:
    assert redis_cluster.url(prefix="c") == (
        f"redis://127.0.0.1:{redis_cluster.ports[0]}/0?cluster=1&prefix=c"
    )
