"""Wake-ups by LISTEN/NOTIFY: the writes notify in their own transaction (queries.sql), and one
listening connection per broker object turns the notifications into asyncio events.

Notifications are hints: a waiter re-reads the database after each one and at the end of its
timeout, and when the listening connection drops and comes back every waiter is woken, since
notifications may have been missed meanwhile. A lost one costs latency, never a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import psycopg
from psycopg import pq, sql

from errands.brokers.postgres.url import PostgresURL
from errands.brokers.waiters import EVERYONE, Waiters

log = logging.getLogger(__name__)

APPLICATION_NAME: Final = "errands-listen"  # how to find (or end) it in pg_stat_activity
LISTEN_WAIT: Final = 1.0  # seconds a waiter waits for the listener before reading anyway
RETRY: Final = 0.2  # seconds before the first attempt to listen again; doubles up to RETRY_MAX
RETRY_MAX: Final = 5.0

Connect = Callable[[], Awaitable[psycopg.AsyncConnection[Any]]]


class Notices(Waiters):
    """The ready and done channels of one schema, as events for waiters in this process."""

    def __init__(self, connect: Connect, ready_channel: str, done_channel: str) -> None:
        super().__init__()
        self._connect = connect
        self._ready_channel, self._done_channel = ready_channel, done_channel
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self.reconnects = 0  # times the listener came back after losing its connection

    @classmethod
    def of(cls, url: PostgresURL) -> Notices:
        """The notices of `url`'s schema, heard on a connection of their own (not pooled)."""
        return cls(functools.partial(_listen_connection, url), url.ready_channel, url.done_channel)

    @property
    def listening(self) -> bool:
        """Whether notifications are being received now."""
        return self._listening.is_set()

    @property
    def backend_pid(self) -> int | None:
        """The server process of the listening connection (pg_stat_activity.pid), if any."""
        connection = self._connection
        return None if connection is None else connection.info.backend_pid

    async def listen(self) -> None:
        """Start the listener (once); returns when it listens, or after LISTEN_WAIT while the
        server is unreachable (the waiter then reads and falls back to its timeout)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        if not self._listening.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LISTEN_WAIT):
                    await self._listening.wait()

    async def close(self) -> None:
        """Stop listening and close the connection; every waiter is woken. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, psycopg.Error, OSError):
                await task
        self._listening.clear()
        self.wake_all()

    async def _run(self) -> None:
        pause = RETRY
        while True:
            try:
                connection = await self._connect()
            except (psycopg.Error, OSError) as error:
                log.debug("cannot listen for notices yet: %s", error)
                await asyncio.sleep(pause)
                pause = min(RETRY_MAX, pause * 2)
                continue
            self._connection = connection
            try:
                for name in (self._ready_channel, self._done_channel):
                    await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
                pause = RETRY
                self._listening.set()
                self.wake_all()  # notifications sent while not listening were lost
                await self._receive(connection)
            except (psycopg.Error, OSError) as error:
                if self._listening.is_set():
                    log.warning("lost the connection listening for notices (%s); again", error)
                    self.reconnects += 1
            finally:
                self._listening.clear()
                self._connection = None
                self.wake_all()
                with contextlib.suppress(psycopg.Error, OSError):
                    await connection.close()
            await asyncio.sleep(pause)

    async def _receive(self, connection: psycopg.AsyncConnection[Any]) -> None:
        """Deliver notifications as they arrive, until the connection fails.

        Reads libpq's input only when the socket is readable: psycopg's own `notifies()` also
        wakes ten times a second to look for interrupts, which an idle worker would pay for.
        """
        pgconn = connection.pgconn
        encoding = connection.info.encoding
        readable = asyncio.Event()
        loop = asyncio.get_running_loop()
        socket = pgconn.socket
        loop.add_reader(socket, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                pgconn.consume_input()  # raises once the server has gone or closed it
                while (notification := pgconn.notifies()) is not None:
                    self._deliver(
                        notification.relname.decode(encoding), notification.extra.decode(encoding)
                    )
                if pgconn.status != pq.ConnStatus.OK:
                    raise psycopg.OperationalError("the listening connection was closed")
        finally:
            loop.remove_reader(socket)

    def _deliver(self, channel: str, payload: str) -> None:
        # An empty payload names nobody in particular: every waiter of the channel re-reads.
        if channel == self._ready_channel:
            self.deliver_ready(payload.split("\n") if payload else [EVERYONE])
        elif channel == self._done_channel:
            self.deliver_done(payload.split(" ") if payload else [EVERYONE])


async def _listen_connection(url: PostgresURL) -> psycopg.AsyncConnection[Any]:
    # Always named so, whatever the URL says: operators and tests find it by this name.
    kwargs: dict[str, Any] = {**url.listen_defaults, "application_name": APPLICATION_NAME}
    return await psycopg.AsyncConnection.connect(url.conninfo, autocommit=True, **kwargs)
