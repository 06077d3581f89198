"""Which brokers the system and chaos suites run on, selected with `--brokers`.

A broker joins in tests/brokers/registry.py (the one registry, shared with the conformance
kit); every shared one is a candidate here. Every test that uses the `app` (or `broker_url`)
fixture then runs once per selected broker, with the broker's name in its id. A test that only
makes sense on some brokers (it opens the SQLite file itself, say) carries
`@pytest.mark.brokers("sqlite", reason=...)`.
"""

from __future__ import annotations

import functools

import pytest

from tests.brokers.registry import REGISTRY, Entry
from tests.conftest import services_required

#: The brokers whose storage workers in other processes share (tests/brokers/registry.py).
SYSTEM: dict[str, Entry] = {name: entry for name, entry in REGISTRY.items() if entry.shared}


@functools.cache
def why_unavailable(name: str) -> str | None:
    """Why broker `name` cannot run here, or None; asked once per session, since probing an
    unreachable server can take its connect timeout."""
    return SYSTEM[name].unavailable()


def selected(option: str | None) -> list[str]:
    """The brokers named by `--brokers` (a comma-separated list), in that order.

    Without the option: every registered broker whose server is reachable, or every one under
    ERRANDS_REQUIRE_SERVICES=1, so that in CI a server that is down fails the run instead of
    quietly leaving it.
    """
    if option is None:
        if services_required():
            return list(SYSTEM)
        return [name for name in SYSTEM if why_unavailable(name) is None]
    names = list(dict.fromkeys(name.strip() for name in option.split(",") if name.strip()))
    unknown = [name for name in names if name not in SYSTEM]
    if unknown or not names:
        raise pytest.UsageError(
            f"--brokers={option}: known brokers are {', '.join(SYSTEM)}"
            + (f"; no broker named {', '.join(unknown)}" if unknown else "")
        )
    return names
