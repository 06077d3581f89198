"""Settings: every default in one place, overridable by ERRANDS_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import Self

DEFAULT_BROKER_URL = "sqlite:///errands.db"


@dataclass(frozen=True, slots=True)
class Settings:
    """Worker and producer defaults; durations are timedeltas (`ERRANDS_LEASE=30` is seconds)."""

    broker_url: str = DEFAULT_BROKER_URL
    #: A claimed job's lease; the worker extends all its leases in one call every
    #: `extend_every` (which also delivers cancel requests), so a live job of any length keeps
    #: it. A dead worker's job runs again within lease + rescue_every, or within rescue_every
    #: when the rescuer is on the dead worker's host (it sees the worker's lock drop).
    lease: timedelta = timedelta(seconds=4)
    extend_every: timedelta = timedelta(milliseconds=500)
    rescue_every: timedelta = timedelta(seconds=1)
    prune_every: timedelta = timedelta(minutes=1)
    #: Terminal jobs are deleted this long after they finish (results expire sooner).
    retention: timedelta = timedelta(days=7)
    result_ttl: timedelta = timedelta(days=1)
    max_attempts: int = 3
    max_crashes: int = 3
    #: The completer sends finished outcomes after this window or `flush_size` outcomes.
    flush_window: timedelta = timedelta(milliseconds=2)
    flush_size: int = 200
    #: Longest idle wait between claims when no wake-up arrives (a safety net, not polling).
    idle_wait: timedelta = timedelta(seconds=1)
    grace: timedelta = timedelta(seconds=30)
    #: The event loop of workers and of the App's portal: "auto" (uvloop when installed),
    #: "uvloop" or "asyncio".
    loop: str = "auto"
    #: One INFO line per completed job on the `errands.jobs` logger (retries and dead letters
    #: are logged whatever this says); ERRANDS_LOG_JOBS=0 turns it off.
    log_jobs: bool = True
    #: Process pool: jobs claimed ahead per child (leased, waiting in the worker process), so
    #: children never wait for a claim and claims and finishes come in batches; no more than a
    #: child starts within 0.1 s at the recent pace (prefetch.py), so only quick jobs get all.
    prefetch: int = 16
    #: Process pool: the hard limit is the task's timeout plus this; then the child is killed.
    hard_timeout_margin: timedelta = timedelta(seconds=5)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Defaults overridden by ERRANDS_<FIELD> variables (durations in seconds)."""
        env = os.environ if environ is None else environ
        changes: dict[str, object] = {}
        for spec in fields(cls):
            raw = env.get(f"ERRANDS_{spec.name.upper()}")
            if raw is None:
                continue
            default = getattr(cls(), spec.name)
            changes[spec.name] = _parse(spec.name, raw, default)
        return replace(cls(), **changes)  # type: ignore[arg-type]


def _parse(name: str, raw: str, default: object) -> object:
    if isinstance(default, bool):
        if raw.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if raw.strip().lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"ERRANDS_{name.upper()}={raw!r} is not a boolean (use 1 or 0)")
    try:
        if isinstance(default, timedelta):
            return timedelta(seconds=float(raw))
        if isinstance(default, int):
            return int(raw)
    except ValueError:
        raise ValueError(f"ERRANDS_{name.upper()}={raw!r} is not a number") from None
    return raw
