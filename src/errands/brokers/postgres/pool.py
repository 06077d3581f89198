"""A small pool of autocommit connections, made for a broker: it fails fast while the server is
down and recovers the moment it is back.

A general-purpose pool (psycopg_pool) makes connections in the background and retries a failed
one after 1, 2, 4, 8... seconds, while callers wait for one up to their timeout: during an
outage every call blocks for the whole timeout, and after a restart work resumes only at the
next retry. Here a call that finds no idle connection connects itself, so a server that refuses
connections raises at once, and the first call after a restart gets a fresh connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import psycopg
from psycopg import pq

Connection = psycopg.AsyncConnection[Any]

#: A connection idle longer than this is checked (an empty query) before it is handed out, so
#: one a server restart or an administrator ended is replaced instead of failing a call. One
#: used more recently is handed out at once: a busy worker pays no extra round trip.
CHECK_IDLE: Final = 1.0
#: Idle connections unused this long are closed, so a burst's connections do not stay open.
MAX_IDLE: Final = 300.0


class PoolTimeout(Exception):
    """No connection became free within the pool's timeout (all are in use)."""


class Pool:
    """Up to `max_size` connections made by `connect`; the most recently used is reused first."""

    def __init__(
        self, connect: Callable[[], Awaitable[Connection]], *, max_size: int, timeout: float
    ) -> None:
        self._connect = connect
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_size)
        self._idle: list[tuple[Connection, float]] = []  # (connection, last used), oldest first
        self._closed = False

    async def acquire(self) -> Connection:
        """An idle connection that works (checked if it idled past CHECK_IDLE), or a new one.

        Raises PoolTimeout when every connection stays in use past the timeout, and psycopg's
        error when a new connection cannot be made."""
        if self._closed:
            raise psycopg.InterfaceError("the connection pool is closed")
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise PoolTimeout(f"no connection free within {self._timeout:g}s") from None
        try:
            while self._idle:
                connection, used = self._idle.pop()
                if await _usable(connection, time.monotonic() - used):
                    return connection
                await _close(connection)
            return await self._connect()
        except BaseException:
            self._slots.release()
            raise

    async def release(self, connection: Connection, *, broken: bool = False) -> None:
        """Take back a connection from `acquire`: kept if it is idle and healthy, else closed."""
        try:
            healthy = (
                not broken
                and not self._closed
                and connection.pgconn.status == pq.ConnStatus.OK
                and connection.info.transaction_status == pq.TransactionStatus.IDLE
            )
            if not healthy:
                await _close(connection)
                return
            now = time.monotonic()
            self._idle.append((connection, now))
            while self._idle and now - self._idle[0][1] > MAX_IDLE:
                stale, _ = self._idle.pop(0)
                await _close(stale)
        finally:
            self._slots.release()

    async def discard_idle(self) -> None:
        """Close every idle connection: after a connection failure they are likely dead too
        (a restarted server), and the next calls connect anew."""
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            await _close(connection)

    async def close(self) -> None:
        """Close the idle connections; those in use are closed as they come back."""
        self._closed = True
        await self.discard_idle()


async def _usable(connection: Connection, idle_for: float) -> bool:
    if connection.closed or idle_for > MAX_IDLE:
        return False
    if idle_for <= CHECK_IDLE:
        return True
    try:
        await connection.execute("")
    except psycopg.Error:
        return False
    return True


async def _close(connection: Connection) -> None:
    with contextlib.suppress(psycopg.Error, OSError):
        await connection.close()
