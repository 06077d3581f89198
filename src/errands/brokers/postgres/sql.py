"""The PostgreSQL broker's SQL, loaded once from queries.sql and migrations/; what its statements
share (Scope); and `fetch`, which runs one named query."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from errands.brokers.postgres.pool import Connection
from errands.brokers.postgres.url import PostgresURL
from errands.brokers.sqlfiles import load_migrations, load_queries

Q: Final = load_queries("errands.brokers.postgres")
MIGRATIONS: Final = load_migrations("errands.brokers.postgres")

#: The broker's clock for a statement: 'now' (the server's) or a test's instant.
Now = datetime | str


@dataclass(frozen=True, slots=True)
class Scope:
    """What every statement of one broker needs beside its own parameters: the URL (the
    schema's wake-up channels and lock keys, the location for messages) and the clock."""

    url: PostgresURL
    now: Callable[[], Now]


async def fetch(
    connection: Connection, name: str, params: Mapping[str, Any]
) -> tuple[list[Any], list[str]]:
    """Rows and column names of query `name` on `connection`."""
    cursor = await connection.execute(Q[name], params)
    names = [column.name for column in cursor.description or ()]
    return await cursor.fetchall(), names
