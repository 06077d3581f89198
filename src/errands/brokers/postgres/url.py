"""`postgresql://` and `postgres://` URLs: errands' own options split from libpq's."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_SCHEMA: Final = "errands"
#: Seconds to connect before a call raises BrokerUnavailable, unless the URL says otherwise:
#: without it, a server behind a dead route would hold a call for the kernel's TCP timeout.
CONNECT_TIMEOUT: Final = 5
#: The pool's defaults (per broker object, so per process): a worker's loops (claim, extend,
#: finish, maintenance) each hold a connection for one statement at a time. The timeout is how
#: long a call waits for a connection while all are in use.
POOL_MAX_SIZE: Final = 10
POOL_TIMEOUT: Final = 5.0
LISTEN_KEEPALIVES: Final = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}
#: What errands itself reads from the query; every other option is libpq's.
ERRANDS_OPTIONS: Final = ("schema", "pool_max_size", "pool_timeout")
#: PostgreSQL's longest identifier, in bytes (NAMEDATALEN - 1): a longer one is cut silently.
MAX_IDENTIFIER: Final = 63


@dataclass(frozen=True, slots=True)
class PostgresURL:
    """A parsed broker URL: what libpq connects to, and errands' options."""

    conninfo: str  # the URL for libpq, without errands' options
    schema: str
    location: str  # host:port/db and schema, never the password
    pool_max_size: int = POOL_MAX_SIZE
    pool_timeout: float = POOL_TIMEOUT
    #: libpq settings errands supplies unless the URL sets them (connect_timeout, ...).
    defaults: Mapping[str, str] = field(default_factory=dict)
    #: The same for the listening connection, which adds TCP keepalives: it is silent for as
    #: long as nothing happens, and without them a dead route would leave it waiting forever.
    listen_defaults: Mapping[str, str] = field(default_factory=dict)

    @property
    def ready_channel(self) -> str:
        """The NOTIFY channel of jobs that became claimable (payload: queue names)."""
        return channel(self.schema, "ready")

    @property
    def done_channel(self) -> str:
        """The NOTIFY channel of jobs that ended (payload: job ids)."""
        return channel(self.schema, "done")

    def lock_key(self, purpose: str) -> int:
        """A 64-bit advisory lock key of this schema for `purpose` (migrate, reclaim, ...)."""
        digest = hashlib.sha1(f"errands:{self.schema}:{purpose}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


def channel(schema: str, kind: str) -> str:
    """`errands.<schema>.<kind>`, or a digest of the schema where that is longer than an
    identifier may be (LISTEN takes an identifier; NOTIFY refuses a longer name)."""
    name = f"errands.{schema}.{kind}"
    if len(name.encode()) <= MAX_IDENTIFIER:
        return name
    return f"errands.{hashlib.sha1(schema.encode()).hexdigest()[:16]}.{kind}"


def parse_url(url: str) -> PostgresURL:
    """Split `postgresql://[user[:password]@][host][:port][/db][?options]` (or `postgres://`).

    errands' options: `schema=NAME` (default `errands`) keeps every table of the app in that
    schema, so several apps share one database; `pool_max_size` and `pool_timeout` (seconds a
    call waits for a connection while all are in use) size the connection pool.
    Every other option is libpq's (`sslmode`, `connect_timeout`, `application_name`, ...);
    an unknown one is an error naming it.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(
            f"not a PostgreSQL URL: {_redacted(url)!r} (expected postgresql://host:port/db)"
        )
    options: dict[str, str] = {}
    passed: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if name in ERRANDS_OPTIONS:
            options[name] = value
        elif name in _libpq_options():
            passed.append((name, value))
        else:
            known = ", ".join([*ERRANDS_OPTIONS, "or libpq's (sslmode, connect_timeout, ...)"])
            raise ValueError(f"unknown option {name!r} in {_redacted(url)!r} (known: {known})")
    schema = _schema(url, options.get("schema", DEFAULT_SCHEMA))
    query = urlencode(passed)
    # Built by hand: urlunsplit drops the `//` of an empty host (`postgresql:///db`).
    conninfo = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")
    given = _parse_conninfo(url, conninfo)
    ports = [port for port in given.get("port", "").split(",") if port]
    if not all(port.isdigit() for port in ports):
        raise ValueError(f"bad port {given['port']!r} in {_redacted(url)!r}")
    defaults = {"connect_timeout": str(CONNECT_TIMEOUT), "application_name": "errands"}
    listen = {**defaults, **LISTEN_KEEPALIVES}
    return PostgresURL(
        conninfo=conninfo,
        schema=schema,
        location=_location(given, schema),
        pool_max_size=_count(url, options, "pool_max_size", POOL_MAX_SIZE, minimum=1),
        pool_timeout=_seconds(url, options, "pool_timeout", POOL_TIMEOUT),
        defaults={name: value for name, value in defaults.items() if name not in given},
        listen_defaults={name: value for name, value in listen.items() if name not in given},
    )


def _libpq_options() -> frozenset[str]:
    from psycopg import pq

    return frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults())


def _parse_conninfo(url: str, conninfo: str) -> dict[str, str]:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        parsed = conninfo_to_dict(conninfo)
    except psycopg.Error as error:  # libpq's own words: a bad port, a bad percent-escape
        raise ValueError(f"bad PostgreSQL URL {_redacted(url)!r}: {error}") from None
    return {name: str(value) for name, value in parsed.items() if value is not None}


def _schema(url: str, name: str) -> str:
    if not name:
        raise ValueError(f"an empty schema in {_redacted(url)!r}")
    if len(name.encode()) > MAX_IDENTIFIER:
        raise ValueError(
            f"schema {name!r} in {_redacted(url)!r} is longer than PostgreSQL's "
            f"{MAX_IDENTIFIER} bytes"
        )
    if name.lower().startswith("pg_"):
        raise ValueError(f"schema {name!r}: names starting with pg_ are PostgreSQL's own")
    return name


def _count(url: str, options: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    if name not in options:
        return default
    value = options[name]
    if not value.isdigit() or int(value) < minimum:
        raise ValueError(
            f"option {name}={value!r} in {_redacted(url)!r} must be a whole number >= {minimum}"
        )
    return int(value)


def _seconds(url: str, options: dict[str, str], name: str, default: float) -> float:
    if name not in options:
        return default
    value = options[name]
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"option {name}={value!r} in {_redacted(url)!r} must be seconds > 0")
    return seconds


def _location(given: Mapping[str, str], schema: str) -> str:
    hosts = given.get("host") or given.get("hostaddr") or "localhost"
    ports = given.get("port") or "5432"
    host_list, port_list = hosts.split(","), ports.split(",")
    if len(port_list) == 1:
        port_list *= len(host_list)
    where = ",".join(
        f"{host}:{port or '5432'}" for host, port in zip(host_list, port_list, strict=False)
    )
    database = given.get("dbname") or given.get("user") or ""
    return f"postgresql://{where}/{database} (schema {schema})"


def _redacted(url: str) -> str:
    """`url` with any password (in the user part or a `password=` option) shown as `***`."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(name == "password" for name, _ in pairs):
        query = urlencode([(n, "***" if n == "password" else v) for n, v in pairs])
    return urlunsplit(parts._replace(netloc=netloc, query=query))
