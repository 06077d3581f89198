"""Reads the log a producer.py writes: what it asked to enqueue and what was acknowledged."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Group:
    """One enqueue call: its size, and the ids it was acknowledged with (if it was)."""

    name: str
    size: int
    intent_at: float
    acked: dict[str, str] = field(default_factory=dict)  # idempotency key -> job id
    acked_at: float | None = None
    errors: list[tuple[str, float]] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [f"{self.name}-{j}" for j in range(self.size)]


@dataclass
class AckLog:
    groups: dict[str, Group]
    untyped: list[str]

    @classmethod
    def read(cls, path: Path) -> AckLog:
        groups: dict[str, Group] = {}
        untyped: list[str] = []
        for line in path.read_text().splitlines():
            kind, name, middle, at = line.split(" ")
            if kind == "intent":
                groups[name] = Group(name, int(middle), float(at))
            elif kind == "ack":
                group = groups[name]
                group.acked = dict(pair.split("=") for pair in middle.split(","))
                group.acked_at = float(at)
            elif kind == "error":
                groups[name].errors.append((middle, float(at)))
            else:
                untyped.append(line)
        return cls(groups, untyped)

    @property
    def acked(self) -> dict[str, str]:
        """Every acknowledged idempotency key and its job id."""
        return {k: v for g in self.groups.values() for k, v in g.acked.items()}

    def unacked(self) -> list[Group]:
        """Groups asked for but never acknowledged (the producer died inside the call)."""
        return [g for g in self.groups.values() if g.acked_at is None]

    def ack_times(self) -> list[float]:
        return sorted(g.acked_at for g in self.groups.values() if g.acked_at is not None)
