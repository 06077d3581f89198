"""Every broker the shared suites run on: one registry for the conformance kit
(tests/conformance) and the system and chaos suites (tests/system).

A broker joins with one `register(Entry(...))` below: a name, a function that gives fresh
storage for one test as a URL (other threads and processes open the same storage through it),
and, for a broker with a server, a check that says why the server cannot be reached and a
cleanup of what a test left on it. What a broker does not do is declared in its own
`Capabilities`, and the suites skip with that reason.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    """One broker under test."""

    name: str
    #: A URL for storage of its own, fresh for each test (`directory` is the test's tmp_path).
    url: Callable[[Path], str]
    #: None when the broker can run here, else why not (its server is not reachable).
    unavailable: Callable[[], str | None] = lambda: None
    #: Called with the URL after the test, for storage that outlives tmp_path (a server's).
    cleanup: Callable[[str], None] = lambda url: None
    #: Workers in other processes share its storage: the system suites start real workers.
    shared: bool = True


REGISTRY: dict[str, Entry] = {}


@contextlib.contextmanager
def fresh_storage(entry: Entry, directory: Path) -> Iterator[str]:
    """A URL for storage of its own on `entry`'s broker, cleaned up afterwards; skips, or fails
    under ERRANDS_REQUIRE_SERVICES=1, when its server is not reachable."""
    from tests.conftest import require_service

    why = entry.unavailable()
    if why is not None:
        require_service(entry.name, False, why)
    url = entry.url(directory)
    try:
        yield url
    finally:
        entry.cleanup(url)


def register(entry: Entry) -> None:
    """Add a broker to the conformance kit and, if `shared`, the system and chaos suites."""
    REGISTRY[entry.name] = entry


register(Entry("memory", lambda directory: "memory://", shared=False))
register(Entry("sqlite", lambda directory: f"sqlite:///{directory / 'errands.db'}"))


#: The shared Redis of the machine (CI starts it); tests keep apart by key prefix.
REDIS_URL = os.environ.get("ERRANDS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_unavailable() -> str | None:
    try:
        import redis
    except ImportError:
        return "redis-py is not installed (pip install -e '.[test]')"
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except (OSError, redis.RedisError) as error:
        return f"no Redis at {REDIS_URL}: {error}"
    finally:
        client.close()
    return None


#: Per test session, so keys a crashed earlier run left behind are never read as this run's.
_SESSION = uuid.uuid4().hex[:8]


def _redis_url(directory: Path) -> str:
    # The same directory gives the same prefix: a second broker opens the same storage.
    digest = hashlib.sha1(str(directory).encode()).hexdigest()[:12]
    return f"{REDIS_URL}?prefix=test-{_SESSION}-{digest}"


def _redis_cleanup(url: str) -> None:
    import redis

    from errands.brokers.redis.keys import Keys
    from errands.brokers.redis.url import parse_url

    parsed = parse_url(url)
    client = redis.Redis.from_url(parsed.connect)
    try:
        doomed = list(client.scan_iter(match=Keys(parsed.prefix).pattern(), count=1000))
        for start in range(0, len(doomed), 1000):
            client.delete(*doomed[start : start + 1000])
    finally:
        client.close()


register(Entry("redis", _redis_url, _redis_unavailable, _redis_cleanup))


#: The shared PostgreSQL of the machine (CI starts it); tests keep apart by schema.
POSTGRES_URL = os.environ.get(
    "ERRANDS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
#: Each URL handed out and not yet cleaned up, by the test directory it was made for: a cleanup
#: also drops the schemas of directories made inside that one, and whatever is left when the
#: process exits is dropped then (the model test opens one per example, with no cleanup).
_POSTGRES_DIRECTORIES: dict[str, Path] = {}


def _postgres_unavailable() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=2).close()
    except psycopg.Error as error:
        return f"no PostgreSQL at {POSTGRES_URL}: {error}"
    return None


def _postgres_url(directory: Path) -> str:
    # The same directory gives the same schema: a second broker opens the same storage.
    digest = hashlib.sha1(str(directory).encode()).hexdigest()[:12]
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}schema=test_{_SESSION}_{digest}"
    if not _POSTGRES_DIRECTORIES:
        atexit.register(_postgres_cleanup_left)
    _POSTGRES_DIRECTORIES[url] = directory
    return url


def _postgres_cleanup_left() -> None:
    atexit.unregister(_postgres_cleanup_left)
    left = list(_POSTGRES_DIRECTORIES)
    _POSTGRES_DIRECTORIES.clear()
    with contextlib.suppress(Exception):  # a server gone by now keeps them; nothing to do
        _drop_schemas(left)


def _postgres_cleanup(url: str) -> None:
    top = _POSTGRES_DIRECTORIES.pop(url, None)
    doomed = [url]
    if top is not None:
        inside = [u for u, d in _POSTGRES_DIRECTORIES.items() if d.is_relative_to(top)]
        doomed += inside
        for one in inside:
            del _POSTGRES_DIRECTORIES[one]
    _drop_schemas(doomed)


def _drop_schemas(urls: list[str]) -> None:
    import psycopg
    from psycopg import sql

    from errands.brokers.postgres.url import parse_url

    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as connection:
        connection.execute("SET lock_timeout = '10s'")
        for url in urls:
            schema = sql.Identifier(parse_url(url).schema)
            connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))


register(Entry("postgres", _postgres_url, _postgres_unavailable, _postgres_cleanup))


#: The RabbitMQ of the machine (CI starts it). Each test session gets a vhost of its own
#: (made with rabbitmqctl, deleted at exit); tests keep apart by prefix, and each stores its
#: jobs in a SQLite file of its own directory (the companion store).
RABBITMQ_HOST = os.environ.get("ERRANDS_TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("ERRANDS_TEST_RABBITMQ_PORT", "5672"))
RABBITMQ_VHOST = f"errands-test-{_SESSION}"
_rabbitmq_state: dict[str, str | None] = {}


def _rabbitmqctl(*args: str) -> None:
    import subprocess

    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def _rabbitmq_unavailable() -> str | None:
    if "why" in _rabbitmq_state:
        return _rabbitmq_state["why"]
    import shutil
    import socket
    import subprocess

    why: str | None = None
    try:
        import aio_pika  # noqa: F401
    except ImportError:
        why = "aio-pika is not installed (pip install -e '.[test]')"
    if why is None:
        try:
            socket.create_connection((RABBITMQ_HOST, RABBITMQ_PORT), timeout=1).close()
        except OSError as error:
            why = f"no RabbitMQ at {RABBITMQ_HOST}:{RABBITMQ_PORT}: {error}"
    if why is None and shutil.which("rabbitmqctl") is None:
        why = "rabbitmqctl is not on PATH (the tests make a vhost per session with it)"
    if why is None:
        try:
            _rabbitmqctl("add_vhost", RABBITMQ_VHOST)
            atexit.register(_rabbitmq_delete_vhost)
            _rabbitmqctl("set_permissions", "-p", RABBITMQ_VHOST, "guest", ".*", ".*", ".*")
        except (OSError, subprocess.SubprocessError) as error:
            why = f"rabbitmqctl could not make the vhost {RABBITMQ_VHOST}: {error}"
    _rabbitmq_state["why"] = why
    return why


def _rabbitmq_delete_vhost() -> None:
    with contextlib.suppress(Exception):  # a server gone by now keeps it; nothing to do
        _rabbitmqctl("delete_vhost", RABBITMQ_VHOST)


def _rabbitmq_url(directory: Path) -> str:
    from urllib.parse import quote

    _rabbitmq_unavailable()  # makes the vhost (once) when a process opens a URL directly
    digest = hashlib.sha1(str(directory).encode()).hexdigest()[:12]
    store = quote(f"sqlite:///{directory / 'errands.db'}", safe="")
    return (
        f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{RABBITMQ_VHOST}"
        f"?prefix=test-{digest}&store={store}"
    )


def _rabbitmq_cleanup(url: str) -> None:
    import asyncio
    import threading

    import aio_pika

    from errands.brokers.rabbitmq.url import parse_url

    parsed = parse_url(url)

    async def delete() -> None:
        connection = await aio_pika.connect(parsed.connect, timeout=5)
        try:
            channel = await connection.channel()
            # The queues of this prefix the test used most; the rest go with the vhost.
            for name in ("default", "a", "b", "mail", "report", "sms", "dead"):
                await channel.queue_delete(f"{parsed.prefix}.{name}")
            await channel.exchange_delete(f"{parsed.prefix}.dead")
        finally:
            await connection.close()

    def run() -> None:
        with contextlib.suppress(Exception):
            asyncio.run(delete())

    thread = threading.Thread(target=run)  # the caller may be inside a running event loop
    thread.start()
    thread.join()


register(Entry("rabbitmq", _rabbitmq_url, _rabbitmq_unavailable, _rabbitmq_cleanup))
