"""Transactions of the SQLite broker's routing verbs: read, declare and unbind the topology."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from errands.brokers.contract import Binding, Exchange, Topology
from errands.brokers.sqlite.sql import Q


def select(connection: sqlite3.Connection) -> Topology:
    """Every exchange and binding, sorted."""
    exchanges = tuple(Exchange(*row) for row in connection.execute(Q["exchanges_select"]))
    bindings = tuple(Binding(*row) for row in connection.execute(Q["bindings_select"]))
    return Topology(exchanges, bindings)


def declare(
    connection: sqlite3.Connection, exchanges: Sequence[Exchange], bindings: Sequence[Binding]
) -> None:
    """Store exchanges (replacing a name's kind and flag) and bindings (each once)."""
    connection.executemany(
        Q["exchange_put"],
        [{"name": e.name, "kind": e.kind, "unroutable": e.unroutable} for e in exchanges],
    )
    connection.executemany(
        Q["binding_put"],
        [{"exchange": b.exchange, "destination": b.destination, "key": b.key} for b in bindings],
    )


def unbind(connection: sqlite3.Connection, bindings: Sequence[Binding]) -> int:
    """Delete bindings; how many existed."""
    deleted = 0
    for b in set(bindings):
        params = {"exchange": b.exchange, "destination": b.destination, "key": b.key}
        deleted += connection.execute(Q["binding_delete"], params).rowcount
    return deleted
