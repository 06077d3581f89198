"""The redis-py clients of one broker: the one its scripts run on (a Redis, or a RedisCluster
that sends each script to the node owning the app's slot) and a plain Redis to that node, for
pub/sub and the durability check."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from errands.brokers.redis.errors import translated
from errands.brokers.redis.keys import Keys
from errands.brokers.redis.url import RedisURL
from errands.errors import BrokerUnavailable


async def connect(url: RedisURL, keys: Keys, timeout: float) -> tuple[Any, aioredis.Redis]:
    """The scripts' client and the node's client (the same object without a cluster), each
    waiting `timeout` seconds at most for a connection or a reply."""
    # A couple of quick retries ride out a dropped pooled connection (a Redis restart);
    # longer outages surface as BrokerUnavailable and the caller's own loop retries.
    retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), 2)
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if not url.cluster:
        client = aioredis.Redis.from_url(url.connect, retry=retry, **options)
        return client, client
    cluster = RedisCluster.from_url(url.connect, retry=retry, **options)
    async with translated(url.location):
        await cluster.initialize()
    node = cluster.get_node_from_key(keys.meta)
    if node is None:
        await cluster.aclose()
        raise BrokerUnavailable(f"no Redis Cluster node serves {url.location}")
    return cluster, aioredis.Redis(host=node.host, port=int(node.port), **_credentials(cluster))


def _credentials(cluster: RedisCluster) -> dict[str, Any]:
    """What a plain client to one node of `cluster` needs to log in like the cluster client."""
    kwargs = cluster.get_connection_kwargs()
    wanted = ("username", "password", "ssl", "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile")
    return {name: kwargs[name] for name in wanted if name in kwargs}
