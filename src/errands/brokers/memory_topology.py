"""The memory broker's exchanges and bindings: the reference for how brokers store routing."""

from __future__ import annotations

from collections.abc import Sequence

from errands.brokers.contract import Binding, Exchange, Topology


class TopologyTable:
    """Exchanges by name and the set of bindings."""

    def __init__(self) -> None:
        self.exchanges: dict[str, Exchange] = {}
        self.bindings: set[Binding] = set()

    def snapshot(self) -> Topology:
        """Everything stored, sorted as Broker.topology says."""
        exchanges = tuple(self.exchanges[name] for name in sorted(self.exchanges))
        order = sorted(self.bindings, key=lambda b: (b.exchange, b.destination, b.key))
        return Topology(exchanges, tuple(order))

    def declare(self, exchanges: Sequence[Exchange], bindings: Sequence[Binding]) -> None:
        """Store (or replace) exchanges and add bindings."""
        for exchange in exchanges:
            self.exchanges[exchange.name] = exchange
        self.bindings.update(bindings)

    def unbind(self, bindings: Sequence[Binding]) -> int:
        """Delete bindings; how many existed."""
        gone = set(bindings) & self.bindings
        self.bindings -= gone
        return len(gone)
