"""RabbitMQ broker URLs: `amqp://user:password@host:port/vhost?store=<URL>&prefix=NAME`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

DEFAULT_PREFIX = "errands"
#: How long a publish waits for its confirm, and a connect for the server.
DEFAULT_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class RabbitURL:
    """A parsed URL: what aio-pika connects to, the store's URL and errands' options."""

    connect: str  # the AMQP URL without errands' options (aio-pika's own options stay)
    store: str
    prefix: str
    timeout: timedelta
    prefetch: int | None  # tickets a queue's consumer may hold unacked; None: from the claims
    location: str  # amqp://host:port/vhost (prefix p), never the password


def parse_url(url: str) -> RabbitURL:
    """Split an `amqp://` (or `amqps://`) URL. `store` (required, URL-encoded) is the broker
    URL of the companion store (SQLite, Redis or PostgreSQL) that holds every job; `prefix`
    (default `errands`) starts every queue and exchange name; `timeout` (seconds) bounds a
    connect and each publisher confirm; `prefetch` (a positive int) is the prefetch count of
    each queue's consumer (default: three times the largest claim). Other options go to aio-pika
    (`heartbeat`, ...)."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError(f"not an AMQP URL: {url!r} (expected amqp://host:port/vhost?store=...)")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r} (expected amqp://host:port/vhost?store=...)")
    store, prefix, timeout = "", DEFAULT_PREFIX, DEFAULT_TIMEOUT
    prefetch: int | None = None
    passed: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "store":
            store = value
        elif name == "prefix":
            prefix = value
        elif name == "timeout":
            try:
                timeout = timedelta(seconds=float(value))
            except ValueError:
                raise ValueError(f"timeout in {url!r} must be seconds, not {value!r}") from None
        elif name == "prefetch":
            prefetch = int(value) if value.isdigit() else 0
            if not 0 < prefetch < 2**16:  # basic.qos carries a 16-bit count
                raise ValueError(f"prefetch in {url!r} must be 1 to 65535, not {value!r}")
        else:
            passed.append((name, value))
    if not store:
        raise ValueError(
            f"no store in {url!r}: the RabbitMQ broker keeps its jobs in a companion store, "
            "e.g. ?store=sqlite%3A%2F%2F%2Ferrands.db (a URL-encoded sqlite, redis or "
            "postgresql URL)"
        )
    if urlsplit(store).scheme in ("amqp", "amqps", "memory"):
        raise ValueError(f"the store of {url!r} must be a sqlite, redis or postgresql URL")
    if not prefix or any(c in prefix for c in " \t\n"):
        raise ValueError(f"bad prefix {prefix!r} in {url!r}")
    connect = urlunsplit(parts._replace(query=urlencode(passed)))
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    location = f"{parts.scheme}://{parts.hostname}:{port}/{quote(vhost, safe='')} (prefix {prefix})"
    return RabbitURL(connect, store, prefix, timeout, prefetch, location)
