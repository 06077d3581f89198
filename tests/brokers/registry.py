"""Every broker the shared suites run on: one registry for the conformance kit
(tests/conformance) and the system and chaos suites (tests/system).

A broker joins with one `register(Entry(...))` below: a name, a function that gives fresh
storage for one test as a URL (other threads and processes open the same storage through it),
and, for a broker with a server, a check that says why the server cannot be reached and a
cleanup of what a test left on it. What a broker does not do is declared in its own
`Capabilities`, and the suites skip with that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    """One broker under test."""

    name: str
    #: A URL for storage of its own, fresh for each test (`directory` is the test's tmp_path).
    url: Callable[[Path], str]
    #: None when the broker can run here, else why not (its server is not reachable).
    unavailable: Callable[[], str | None] = lambda: None
    #: Called with the URL after the test, for storage that outlives tmp_path (a server's).
    cleanup: Callable[[str], None] = lambda url: None
    #: Workers in other processes share its storage: the system suites start real workers.
    shared: bool = True


REGISTRY: dict[str, Entry] = {}


def register(entry: Entry) -> None:
    """Add a broker to the conformance kit and, if `shared`, the system and chaos suites."""
    REGISTRY[entry.name] = entry


register(Entry("memory", lambda directory: "memory://", shared=False))
register(Entry("sqlite", lambda directory: f"sqlite:///{directory / 'errands.db'}"))
