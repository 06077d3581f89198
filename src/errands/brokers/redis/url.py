"""`redis://` and `rediss://` URLs: errands' own options split from redis-py's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS

DEFAULT_PREFIX: Final = "errands"
_TRUE: Final = {"1", "true", "yes", "on"}
_FALSE: Final = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A parsed broker URL: what redis-py connects to, and errands' options."""

    connect: str  # the URL for redis-py, without errands' options
    prefix: str
    cluster: bool
    location: str  # host:port/db, never the password


def parse_url(url: str) -> RedisURL:
    """Split `redis://[[user]:password@]host[:port][/db][?options]` (or `rediss://` for TLS).

    errands' options: `prefix=NAME` (default `errands`) puts every key of the app under
    `{NAME}:`, so several apps share one Redis; `cluster=1` talks to a Redis Cluster through any
    of its nodes. Every other option is one of redis-py's (`socket_timeout`, `max_connections`,
    `health_check_interval`, ...); an unknown one is an error naming it.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"not a Redis URL: {url!r} (expected redis://host:port/db)")
    if not parts.hostname:
        raise ValueError(f"no host in {url!r} (expected redis://host:port/db)")
    prefix, cluster = DEFAULT_PREFIX, False
    passed: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if name == "prefix":
            prefix = value
        elif name == "cluster":
            cluster = _flag(url, name, value)
        elif name in URL_QUERY_ARGUMENT_PARSERS:
            passed.append((name, value))
        else:
            known = ", ".join(["prefix", "cluster", *sorted(URL_QUERY_ARGUMENT_PARSERS)])
            raise ValueError(f"unknown option {name!r} in {url!r} (known: {known})")
    path = parts.path or "/0"
    db = path.lstrip("/") or "0"
    if not db.isdigit():
        raise ValueError(f"the database in {url!r} must be a number, not {db!r}")
    if cluster and db != "0":
        raise ValueError(f"Redis Cluster has only database 0: {url!r}")
    connect = urlunsplit((parts.scheme, parts.netloc, f"/{db}", urlencode(passed), ""))
    port = parts.port or 6379
    location = f"{parts.scheme}://{parts.hostname}:{port}/{db} (prefix {prefix})"
    return RedisURL(connect, prefix, cluster, location)


def _flag(url: str, name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"option {name}={value!r} in {url!r} must be 1/0, true/false or yes/no")
