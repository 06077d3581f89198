"""The PostgreSQL server behind a broker: a connection pool, migrations, and PostgreSQL's errors
turned into BrokerErrors.

Connections are autocommit, so a verb of one statement is one transaction and one round trip;
the verbs of several statements (a keyed enqueue, a schedule's firing) open a transaction
themselves. What the statements do is left to broker.py, its verb modules and queries.sql.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Final, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from errands.brokers.postgres.pool import Connection, Pool, PoolTimeout
from errands.brokers.postgres.sql import MIGRATIONS, Q
from errands.brokers.postgres.url import PostgresURL
from errands.errors import BrokerError, BrokerFull, BrokerUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A statement that lost a deadlock or a serialization check rolled back whole: it is run again
#: this many times before the error is raised.
ATTEMPTS: Final = 3
#: SQLSTATEs that mean the server cannot serve now, though it is reachable: it is starting,
#: shutting down, out of connections or memory, or a standby that takes no writes.
_UNAVAILABLE: Final = frozenset(
    {
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
        "53300",  # too_many_connections
        "53200",  # out_of_memory
        "25006",  # read_only_sql_transaction
        "55P03",  # lock_not_available: a lock held past lock_timeout
        "08000",  # connection_exception (and the rest of class 08, below)
    }
)
_DISK_FULL: Final = "53100"
_RETRY: Final = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure


class Database:
    """A pool of autocommit connections whose search_path is the URL's schema."""

    def __init__(self, url: PostgresURL) -> None:
        self.url = url
        self._pool: Pool | None = None
        self.calls = 0  # statements' transactions run, for benchmarks

    @property
    def opened(self) -> bool:
        """Whether the pool is open."""
        return self._pool is not None

    def connect_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """libpq settings for a new connection: the URL's, errands' defaults, `overrides`."""
        return {**self.url.defaults, **overrides}

    async def open(self) -> None:
        """Open the pool; connections are made as calls need them."""
        if self._pool is None:
            self._pool = Pool(
                self._connect, max_size=self.url.pool_max_size, timeout=self.url.pool_timeout
            )

    async def close(self) -> None:
        """Close every connection of the pool; idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _connect(self) -> Connection:
        connection = await psycopg.AsyncConnection.connect(
            self.url.conninfo, **self.connect_kwargs(autocommit=True)
        )
        try:
            path = sql.Identifier(self.url.schema).as_string(connection)
            await connection.execute(Q["session_setup"], {"search_path": path})
        except BaseException:
            await connection.close()
            raise
        return connection

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection for one verb; PostgreSQL's errors leave as BrokerErrors.

        After a connection failure the pool's idle connections are closed too: a restarted
        server ended them all, and the next calls connect anew (or fail at once while the
        server is still away)."""
        pool = self._pool
        if pool is None:
            raise BrokerUnavailable(f"the broker for {self.url.location} is closed")
        self.calls += 1
        try:
            with self.errors():
                connection = await pool.acquire()
                broken = False  # else the pool keeps it if it is idle and healthy
                try:
                    yield connection
                except psycopg.Error as error:
                    broken = _unavailable(error)
                    raise
                finally:
                    await pool.release(connection, broken=broken)
        except BrokerUnavailable:
            await pool.discard_idle()
            raise

    async def run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """`work(connection)` on a pooled connection, run again (whole) after a deadlock or a
        serialization failure, which roll back everything it did."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.connection() as connection:
                    return await work(connection)
            except BrokerError as error:
                cause = error.__cause__
                if attempt == ATTEMPTS or _sqlstate(cause) not in _RETRY:
                    raise
                log.debug("retrying a statement that lost a lock race: %s", cause)
                await asyncio.sleep(0.005 * attempt)
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Turn psycopg's and the pool's errors into BrokerErrors that name the location."""
        try:
            yield
        except PoolTimeout as error:
            raise BrokerUnavailable(
                f"PostgreSQL at {self.url.location} unavailable: no connection within "
                f"{self.url.pool_timeout:g}s ({error})"
            ) from error
        except psycopg.Error as error:
            raise translate(error, self.url.location) from error

    async def migrate(self) -> list[int]:
        """Create the schema if needed and apply the migrations not yet recorded, in one
        transaction on a connection of its own, under an advisory lock on the schema: processes
        racing to migrate take turns and the later ones find nothing left to do. Returns the
        versions applied."""
        with self.errors():
            connection = await psycopg.AsyncConnection.connect(
                self.url.conninfo, **self.connect_kwargs(autocommit=True)
            )
            try:
                return await self._migrate(connection)
            finally:
                await connection.close()

    async def _migrate(self, connection: Connection) -> list[int]:
        schema = sql.Identifier(self.url.schema)
        done: list[int] = []
        async with connection.transaction():
            await connection.execute(Q["migrate_lock"], {"key": self.url.lock_key("migrate")})
            await connection.execute(sql.SQL(Q["schema_create"]).format(schema=schema))
            await connection.execute(
                Q["migrate_search_path"], {"search_path": schema.as_string(connection)}
            )
            await connection.execute(Q["migrations_create"])
            cursor = await connection.execute(Q["migrations_applied"])
            applied = {row[0] for row in await cursor.fetchall()}
            for migration in MIGRATIONS:
                if migration.version in applied:
                    continue
                for statement in migration.statements():
                    await connection.execute(statement)
                await connection.execute(
                    Q["migration_record"], {"version": migration.version, "name": migration.name}
                )
                done.append(migration.version)
        return done


def translate(error: psycopg.Error, location: str) -> BrokerError:
    """The BrokerError for a psycopg error: a full disk is BrokerFull; a server that cannot be
    reached or cannot serve now (restarting, shutting down, out of connections, read-only) is
    BrokerUnavailable; anything else is BrokerError, with PostgreSQL's message."""
    if _sqlstate(error) == _DISK_FULL:
        return BrokerFull(f"PostgreSQL at {location} is out of disk space: {error}")
    if _unavailable(error):
        return BrokerUnavailable(f"PostgreSQL at {location} unavailable: {error}")
    return BrokerError(f"PostgreSQL at {location} refused a statement: {error}")


def _unavailable(error: psycopg.Error) -> bool:
    """Whether `error` says the server cannot be reached or cannot serve now."""
    state = _sqlstate(error)
    if state is None:  # raised by libpq or psycopg: no connection, or one that broke
        return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)
    return state in _UNAVAILABLE or state.startswith("08")


def _sqlstate(error: BaseException | None) -> str | None:
    if isinstance(error, pg_errors.Error):
        return error.sqlstate
    return None
