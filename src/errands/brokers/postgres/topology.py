"""Routing topology on PostgreSQL: the rows of the `exchanges` and `bindings` tables
(0003_topology.sql) and the verbs that read and write them, each one statement on a connection
the broker lends. routing.py decides where a message goes; these only store."""

from __future__ import annotations

from collections.abc import Sequence

from errands.brokers.contract import Binding, Exchange, Topology
from errands.brokers.postgres.pool import Connection
from errands.brokers.postgres.sql import Q, fetch


async def select(connection: Connection) -> Topology:
    """Every exchange (by name) and binding (by exchange, destination, key)."""
    cursor = await connection.execute(Q["topology_select"])
    exchanges: list[Exchange] = []
    bindings: list[Binding] = []
    for part, a, b, c in await cursor.fetchall():
        if part == 0:
            exchanges.append(Exchange(a, b, c))
        else:
            bindings.append(Binding(a, b, c))
    return Topology(tuple(exchanges), tuple(bindings))


async def declare(
    connection: Connection, exchanges: Sequence[Exchange], bindings: Sequence[Binding]
) -> None:
    """Store exchanges (a name given twice takes its last kind and flag, as if declared one by
    one) and bindings (each once), in one statement."""
    if not exchanges and not bindings:
        return
    final = {exchange.name: exchange for exchange in exchanges}
    named = [final[name] for name in sorted(final)]
    unique = sorted(set(bindings), key=_order)
    await connection.execute(
        Q["topology_declare"],
        {
            "names": [e.name for e in named],
            "kinds": [e.kind for e in named],
            "unroutables": [e.unroutable for e in named],
            **_columns(unique),
        },
    )


async def unbind(connection: Connection, bindings: Sequence[Binding]) -> int:
    """Delete bindings in one statement; how many existed."""
    if not bindings:
        return 0
    found, _ = await fetch(connection, "topology_unbind", _columns(bindings))
    return int(found[0][0])


def _columns(bindings: Sequence[Binding]) -> dict[str, list[str]]:
    """Bindings as the arrays a statement unnests."""
    return {
        "exchanges": [b.exchange for b in bindings],
        "destinations": [b.destination for b in bindings],
        "keys": [b.key for b in bindings],
    }


def _order(binding: Binding) -> tuple[str, str, str]:
    return (binding.exchange, binding.destination, binding.key)
