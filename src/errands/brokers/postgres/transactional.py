"""Enqueue inside the caller's own transaction, on the caller's psycopg connection.

The job rows are written by the broker's usual statements, so idempotency and wake-ups work as
always; the notice is sent by PostgreSQL at commit, and a rollback leaves no job and wakes
nobody. The statements name the broker's tables through `search_path`, set for the transaction
and put back afterwards, so the caller's own statements in the same transaction see their own
`search_path`. Run in a savepoint (or a transaction of its own on an autocommit connection), so
a failed enqueue never aborts the caller's transaction.

A synchronous `psycopg.Connection` is driven through the same coroutine as an asynchronous
one: `Synchronous` wraps it in awaitables that never suspend, and `run_now` steps the coroutine
once to its end, so the enqueue logic is written once.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any, Protocol, TypeVar

import psycopg

from errands.brokers.contract import Enqueued
from errands.job import JobSpec

T = TypeVar("T")


class Enqueuer(Protocol):
    """What the broker lends: its enqueue logic, run on any connection."""

    async def _enqueue_keyed(self, connection: Any, specs: Sequence[JobSpec]) -> list[Enqueued]:
        """Insert the specs on `connection` (keys released first)."""
        ...


async def enqueue_in(
    connection: Any, schema: str, specs: Sequence[JobSpec], broker: Enqueuer
) -> list[Enqueued]:
    """Store `specs` on the caller's `connection` within its transaction (see the module)."""
    if not specs:
        return []
    async with connection.transaction():
        cursor = await connection.execute("SELECT current_setting('search_path')")
        previous = (await cursor.fetchone())[0]
        path = '"' + schema.replace('"', '""') + '"'  # the schema as a quoted identifier
        await connection.execute("SELECT set_config('search_path', %s, true)", (path,))
        try:
            return await broker._enqueue_keyed(connection, specs)
        finally:
            await connection.execute("SELECT set_config('search_path', %s, true)", (previous,))


class _Ready:
    """An awaitable that is already done: awaiting it never suspends."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        return self.value
        yield  # a generator: what makes this awaitable


class _Cursor:
    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def fetchone(self) -> _Ready:
        return _Ready(self._cursor.fetchone())

    def fetchall(self) -> _Ready:
        return _Ready(self._cursor.fetchall())


class _Transaction:
    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._block = connection.transaction()

    async def __aenter__(self) -> None:
        self._block.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self._block.__exit__(*exc)


class Synchronous:
    """A psycopg `Connection` dressed as the `AsyncConnection` the enqueue logic awaits."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.raw = connection

    def execute(self, query: Any, params: Any = None) -> _Ready:
        """Run `query` now; the result is ready when awaited."""
        return _Ready(_Cursor(self.raw.execute(query, params)))

    def transaction(self) -> _Transaction:
        """A transaction (a savepoint inside the caller's)."""
        return _Transaction(self.raw)


def run_now(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends (it awaits only `_Ready` values)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("an enqueue on a synchronous connection tried to wait")
