"""The SQLite file behind a broker: one writer thread and one reader thread, each owning its
connection, so the blocking sqlite3 module never runs on the event loop.

It runs transactions and turns SQLite's busy and full errors into BrokerErrors; what the
transactions do is left to writes.py and reads.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

from errands.errors import BrokerFull, BrokerUnavailable

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

SYNCHRONOUS_MODES: Final = ("OFF", "NORMAL", "FULL", "EXTRA")
#: Lanes inherited by a forked child, kept referenced so their connections are never closed
#: (the one process-wide registry here, and only ever written after a fork).
_CARRIED_ACROSS_FORK: Final[list[_Lane]] = []
_BUSY: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_UNREACHABLE: Final = frozenset({sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR})


class _Lane:
    """One thread and one connection; work submitted here runs in order.

    Work goes in through a SimpleQueue and its result comes back to the submitting loop with
    one `call_soon_threadsafe`: a concurrent.futures executor would add a Future with its own
    lock and condition, and a chained asyncio future, to every transaction. A blocking caller
    may instead run work in its own thread (`run_here`): the connection is shared under a
    mutex, so the caller pays no hop to the lane's thread and back.
    """

    def __init__(self, name: str, connect: Callable[[], sqlite3.Connection]) -> None:
        self._name = name
        self._inbox: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None  # started by the first work, as needed
        self._connect = connect
        self._mutex = threading.Lock()  # held by whichever thread uses the connection
        self._connection: sqlite3.Connection | None = None  # used only under the mutex
        self._closed = False

    async def run(
        self,
        work: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run `work(connection, ...)` on the lane's thread and await its result. Work still
        waiting when its caller is cancelled is skipped; work already running finishes."""
        if self._closed:
            raise RuntimeError(f"{self._name}: the lane is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._inbox.put(_Work(loop, future, functools.partial(work, **kwargs), args))
        return await future

    def run_here(
        self,
        work: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run `work(connection, ...)` in the calling thread, after the work in progress."""
        if self._closed:
            raise RuntimeError(f"{self._name}: the lane is closed")
        with self._mutex:
            return work(self._connected(), *args, **kwargs)

    def _connected(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def _serve(self) -> None:
        while (item := self._inbox.get()) is not None:
            if item.future.cancelled():
                continue
            try:
                with self._mutex:
                    result = item.work(self._connected(), *item.args)
            except BaseException as error:  # handed to the caller, whatever it is
                item.reply(None, error)
            else:
                item.reply(result, None)
        self._close_here()

    async def close(self) -> None:
        """Close the connection on its own thread (after the work before it), then stop the
        thread."""
        self._closed = True
        if self._thread is None:
            await asyncio.to_thread(self._close_here)  # only blocking callers used it
            return
        self._inbox.put(None)
        await asyncio.to_thread(self._thread.join)

    def _close_here(self) -> None:
        with self._mutex:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


@dataclass(frozen=True, slots=True)
class _Work:
    """One piece of work for a lane, and where its result goes."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    work: Callable[..., Any]
    args: tuple[Any, ...]

    def reply(self, result: Any, error: BaseException | None) -> None:
        """Settle the future on its loop (a loop already closed has no one left to tell)."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_settle, self.future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Database:
    """Transactions on one SQLite file: writes serialized on one thread, reads on another.

    Every write is one `BEGIN IMMEDIATE` transaction, so it takes the file's write lock up
    front (waiting up to `busy_timeout`) and can never fail half-way on a lock upgrade.
    """

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str,
        busy_timeout: timedelta,
        max_page_count: int | None = None,
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"synchronous={synchronous!r} is not one of {', '.join(SYNCHRONOUS_MODES)}"
            )
        self.path = path
        self.synchronous = synchronous.upper()
        self.busy_timeout = busy_timeout
        self.max_page_count = max_page_count
        self.calls = 0
        #: Writes whose loss at a power cut costs nothing (a lost claim or extend only means the
        #: job is claimed again) skip the fsync; the next durable commit syncs them too.
        self.light = "NORMAL" if self.synchronous in ("FULL", "EXTRA") else self.synchronous
        self._writer_mode = self.synchronous  # the writer connection's; its thread's alone
        self._writer = _Lane("errands-sqlite-write", self._connect_writer)
        self._reader = _Lane("errands-sqlite-read", self._connect_reader)
        self._pid = os.getpid()

    def _connect(self, setup: Callable[[sqlite3.Connection], None]) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path,
                isolation_level=None,
                timeout=self.busy_timeout.total_seconds(),
                check_same_thread=False,  # a lane's mutex keeps it to one thread at a time
            )
        except sqlite3.Error as error:
            raise self._translate(error) from error
        connection.row_factory = sqlite3.Row
        ms = int(self.busy_timeout.total_seconds() * 1000)
        try:
            connection.execute(f"PRAGMA busy_timeout = {ms}")
            connection.execute(f"PRAGMA synchronous = {self.synchronous}")
            connection.execute("PRAGMA foreign_keys = ON")
            if self.max_page_count is not None:
                connection.execute(f"PRAGMA max_page_count = {int(self.max_page_count)}")
            setup(connection)
        except sqlite3.Error as error:
            connection.close()
            raise self._translate(error) from error
        return connection

    def _connect_writer(self) -> sqlite3.Connection:
        return self._connect(self._use_wal)

    def _connect_reader(self) -> sqlite3.Connection:
        return self._connect(_query_only)

    def _use_wal(self, connection: sqlite3.Connection) -> None:
        """Switch the file to WAL (persistent), so readers in any process run beside a writer.

        The switch needs the file to itself and SQLite reports a busy file at once instead of
        calling the busy handler, so processes opening a new file together retry here.
        """
        deadline = time.monotonic() + self.busy_timeout.total_seconds()
        while True:
            try:
                (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
            except sqlite3.OperationalError as error:
                busy = (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _BUSY
                if not busy or time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)
                continue
            if mode.lower() != "wal":
                log.warning("SQLite database %s stays in %s mode, not WAL", self.path, mode)
            return

    async def write(
        self,
        work: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run `work` in one BEGIN IMMEDIATE transaction on the writer thread; commit or roll
        back as a whole."""
        return await self._write(self.synchronous, work, *args, **kwargs)

    def write_here(
        self,
        work: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Like `write`, run in the calling thread (for blocking callers): the same
        connection and transaction, without the hops to the writer thread and back."""
        self._count_call()
        return self._writer.run_here(self._in_mode, self.synchronous, work, *args, **kwargs)

    async def write_lightly(
        self,
        work: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Like `write`, for a write whose loss at a power cut (not a process crash) costs
        nothing but a repeat: committed without waiting for the disk (synchronous=NORMAL), and
        made durable by the next `write`'s sync of the log."""
        return await self._write(self.light, work, *args, **kwargs)

    async def _write(
        self,
        mode: str,
        work: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        self._count_call()
        return await self._writer.run(self._in_mode, mode, work, *args, **kwargs)

    def _in_mode(
        self,
        connection: sqlite3.Connection,
        mode: str,
        work: Callable[Concatenate[sqlite3.Connection, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        if mode != self._writer_mode:
            connection.execute(f"PRAGMA synchronous = {mode}")  # outside any transaction
            self._writer_mode = mode
        return self._transaction(connection, "BEGIN IMMEDIATE", work, *args, **kwargs)

    async def read(
        self,
        work: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run `work` in one read transaction (a consistent snapshot) on the reader thread."""
        self._count_call()
        return await self._reader.run(self._transaction, "BEGIN", work, *args, **kwargs)

    def read_here(
        self,
        work: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Like `read`, run in the calling thread (for blocking callers), without the hops to
        the reader thread and back."""
        self._count_call()
        return self._reader.run_here(self._transaction, "BEGIN", work, *args, **kwargs)

    def _count_call(self) -> None:
        self.calls += 1
        if self._pid != os.getpid():
            self._after_fork()

    def _after_fork(self) -> None:
        # The threads stayed in the parent, and SQLite forbids using (or even closing, which
        # may checkpoint) a connection carried across fork: keep the old lanes unreachable
        # but alive, and open new ones in this process.
        _CARRIED_ACROSS_FORK.extend((self._writer, self._reader))
        self._writer_mode = self.synchronous
        self._writer = _Lane("errands-sqlite-write", self._connect_writer)
        self._reader = _Lane("errands-sqlite-read", self._connect_reader)
        self._pid = os.getpid()

    def _transaction(
        self,
        connection: sqlite3.Connection,
        begin: str,
        work: Callable[Concatenate[sqlite3.Connection, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        try:
            connection.execute(begin)
            result = work(connection, *args, **kwargs)
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            _roll_back(connection)
            raise self._translate(error) from error
        except BaseException:
            _roll_back(connection)
            raise
        return result

    def _translate(self, error: sqlite3.Error) -> Exception:
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF  # the primary code, no extension
        if code in _BUSY:
            return BrokerUnavailable(
                f"SQLite database {self.path} stayed locked past the busy timeout of "
                f"{self.busy_timeout.total_seconds():g}s: {error}"
            )
        if code == sqlite3.SQLITE_FULL:
            return BrokerFull(f"SQLite database {self.path} is full: {error}")
        if code in _UNREACHABLE:
            return BrokerUnavailable(f"SQLite database {self.path} cannot be used: {error}")
        return error  # anything else is a bug in errands, shown as SQLite reported it

    def reopened(self) -> Database:
        """A fresh, unconnected Database with the same settings (and call count), for a broker
        opened again."""
        fresh = Database(
            self.path,
            synchronous=self.synchronous,
            busy_timeout=self.busy_timeout,
            max_page_count=self.max_page_count,
        )
        fresh.calls = self.calls
        return fresh

    async def close(self) -> None:
        """Close both connections; pending work finishes first."""
        if self._pid != os.getpid():
            self._after_fork()  # nothing of ours to close in this process
        await self._reader.close()
        await self._writer.close()


def _query_only(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA query_only = ON")  # a bug in a read must not write


def _roll_back(connection: sqlite3.Connection) -> None:
    # SQLite may already have rolled back on its own (e.g. SQLITE_FULL): then there is nothing
    # left to undo, and ROLLBACK would raise "no transaction is active".
    if connection.in_transaction:
        connection.rollback()
