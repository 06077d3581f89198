"""Brokers by URL: `from_url` picks an opener by scheme and imports its module lazily."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import urlsplit

from errands.brokers.contract import Broker
from errands.clock import Clock, SystemClock
from errands.errors import UnknownBrokerScheme

Opener = Callable[[str, Clock], Broker]


def _open_memory(url: str, clock: Clock) -> Broker:
    from errands.brokers.memory import MemoryBroker

    return MemoryBroker(clock=clock)


def _open_sqlite(url: str, clock: Clock) -> Broker:
    from errands.brokers.sqlite.broker import SQLiteBroker

    return SQLiteBroker.from_url(url, clock=clock)


def _open_redis(url: str, clock: Clock) -> Broker:
    try:
        from errands.brokers.redis.broker import RedisBroker
    except ImportError as error:  # the client is an optional extra
        raise ImportError(
            f"the Redis broker needs redis-py: pip install 'errands[redis]' ({error})"
        ) from error
    return RedisBroker.from_url(url, clock=clock)


def _open_postgres(url: str, clock: Clock) -> Broker:
    try:
        from errands.brokers.postgres.broker import PostgresBroker
    except ImportError as error:  # the driver is an optional extra
        raise ImportError(
            f"the PostgreSQL broker needs psycopg 3: pip install 'errands[postgres]' ({error})"
        ) from error
    return PostgresBroker.from_url(url, clock=clock)


def _open_rabbitmq(url: str, clock: Clock) -> Broker:
    try:
        from errands.brokers.rabbitmq.broker import RabbitMQBroker
    except ImportError as error:  # the client is an optional extra
        raise ImportError(
            f"the RabbitMQ broker needs aio-pika: pip install 'errands[rabbitmq]' ({error})"
        ) from error
    return RabbitMQBroker.from_url(url, clock=clock)


OPENERS: Final[Mapping[str, Opener]] = {
    "memory": _open_memory,
    "sqlite": _open_sqlite,
    "redis": _open_redis,
    "rediss": _open_redis,
    "postgresql": _open_postgres,
    "postgres": _open_postgres,
    "amqp": _open_rabbitmq,
    "amqps": _open_rabbitmq,
}


def from_url(url: str, *, clock: Clock | None = None) -> Broker:
    """A broker for `url` (`memory://`, `sqlite:///path.db`, `redis://host:port/db`,
    `postgresql://user@host:port/db?schema=app`, `amqp://host:port/vhost?store=<store URL>`), not
    yet opened."""
    return _opener(url)(url, clock or SystemClock())


def check_url(url: str) -> None:
    """Raise UnknownBrokerScheme, naming the known schemes, unless a broker handles `url`."""
    _opener(url)


def _opener(url: str) -> Opener:
    opener = OPENERS.get(urlsplit(url).scheme)
    if opener is None:
        raise UnknownBrokerScheme(url, OPENERS)
    return opener
