"""The order a worker claims its queues in.

By default one claim covers every queue and the broker picks by job priority, then age. With
`strict`, queues are claimed in the order given: a later queue gets only the slots the earlier
ones leave. With weights (`{"high": 3, "default": 1}`), each claim takes the queues in a
random order drawn by weight, as Sidekiq's weighted queues do: "high" comes first three times
in four, and no queue with work is starved, however busy the others.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class QueueOrder:
    """The queues of a worker and how a claim walks them."""

    queues: tuple[str, ...]
    weights: Mapping[str, int] | None = None
    strict: bool = False
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    @classmethod
    def of(cls, queues: Sequence[str] | Mapping[str, int], *, strict: bool = False) -> QueueOrder:
        """From a list of names (strict or not) or a mapping of names to positive weights."""
        if isinstance(queues, Mapping):
            bad = {name: w for name, w in queues.items() if not isinstance(w, int) or w < 1}
            if bad:
                raise ValueError(f"queue weights must be whole numbers >= 1, got {bad}")
            if strict:
                raise ValueError("give queue weights or strict order, not both")
            return cls(tuple(queues), dict(queues))
        return cls(tuple(queues), None, strict)

    def rounds(self) -> list[tuple[str, ...]]:
        """The queue groups one claim asks in turn, each for the slots still free."""
        if self.weights is not None:
            weights = self.weights
            # Efraimidis-Spirakis: a weighted random order in one sort.
            keys = {q: self.rng.random() ** (1 / weights[q]) for q in self.queues}
            return [(q,) for q in sorted(self.queues, key=keys.__getitem__, reverse=True)]
        if self.strict:
            return [(q,) for q in self.queues]
        return [self.queues]


def parse(text: str) -> tuple[str, ...] | dict[str, int]:
    """ "a,b" -> ("a", "b"); "a=3,b=1" -> {"a": 3, "b": 1}; ValueError naming what is wrong."""
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise ValueError(f"{text!r} is not a comma-separated list of queue names")
    weighted = [part for part in parts if "=" in part]
    if not weighted:
        return tuple(parts)
    if len(weighted) != len(parts):
        raise ValueError(f"{text!r}: give every queue a weight (high=3,default=1) or none")
    out: dict[str, int] = {}
    for part in parts:
        name, _, weight = part.partition("=")
        if not name.strip() or not weight.strip().isdigit() or int(weight) < 1:
            raise ValueError(f"{part!r} in {text!r} is not NAME=WEIGHT with a weight >= 1")
        out[name.strip()] = int(weight)
    return out
