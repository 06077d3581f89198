"""Gate: the limit check of one claim, in plain Python for the brokers that claim in Python
(memory, SQLite, PostgreSQL); Redis runs the same rules in its claim script.

A claim reads, for the limit keys of its candidates, how many jobs run under each key and
each key's GCRA state, then asks the gate about candidates in claim order. The gate admits a
job only if every one of its limits admits it, and counts it at once, so later candidates of
the same claim see it. The caller writes `states()` back in the claim's own write.

GCRA (the generic cell rate algorithm): a key keeps a theoretical arrival time `tat`; a job
may start at `now` if `tat - (burst - 1) * period <= now`, and then `tat = max(tat, now) +
period`. That spaces starts one period apart, lets `burst` start back to back after an idle
spell, and needs one number per key, not a log of starts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from errands.limits import Limit


@dataclass(frozen=True, slots=True)
class KeyState:
    """What a claim stores for a key: its GCRA time (µs), when the rate next admits a job (ms,
    for claims to skip the key until then) and the concurrency cap its last job carried."""

    key: str
    tat_us: int
    open_at_ms: int
    concurrency: int | None


class Gate:
    """The admissions of one claim at `now_ms`, over the running counts and GCRA times of the
    keys read (a key not given runs nothing and has never started a job)."""

    def __init__(self, now_ms: int, running: Mapping[str, int], tats_us: Mapping[str, int]) -> None:
        self.now_us = now_ms * 1000
        self.running = dict(running)
        self.tats_us = dict(tats_us)
        #: Keys that admit nothing more in this claim: later candidates with them are skipped.
        self.blocked: set[str] = set()
        self._changed: dict[str, Limit] = {}

    def learn(self, running: Mapping[str, int], tats_us: Mapping[str, int]) -> None:
        """Add what was read about more keys (a later round of candidates)."""
        for key, count in running.items():
            self.running.setdefault(key, count)
        for key, tat in tats_us.items():
            self.tats_us.setdefault(key, tat)

    def admit(self, limits: Iterable[Limit]) -> bool:
        """Whether a job held to `limits` may start now; if so it is counted."""
        limits = tuple(limits)
        for limit in limits:
            if limit.key in self.blocked or not self._open(limit):
                self.blocked.add(limit.key)
                return False
        for limit in limits:
            self.running[limit.key] = self.running.get(limit.key, 0) + 1
            if limit.period_us is not None:
                self.tats_us[limit.key] = max(self._tat(limit.key), self.now_us) + limit.period_us
            self._changed[limit.key] = limit
            if not self._open(limit):
                self.blocked.add(limit.key)
        return True

    def states(self) -> list[KeyState]:
        """The state of every key a job was admitted under, to store."""
        out = []
        for key, limit in self._changed.items():
            tat = self._tat(key)
            tolerance = (limit.burst - 1) * (limit.period_us or 0)
            open_at_ms = math.ceil((tat - tolerance) / 1000) if limit.period_us else 0
            out.append(KeyState(key, tat, open_at_ms, limit.concurrency))
        return out

    def _tat(self, key: str) -> int:
        return self.tats_us.get(key, 0)

    def _open(self, limit: Limit) -> bool:
        if limit.concurrency is not None and self.running.get(limit.key, 0) >= limit.concurrency:
            return False
        if limit.period_us is None:
            return True
        return self._tat(limit.key) - (limit.burst - 1) * limit.period_us <= self.now_us
