"""The conformance kit: one registry of brokers the contract suite runs against.

A broker joins with one `register(Entry(...))` below: a name, a function that gives a fresh
storage for one test as a URL (so other threads and processes can open the same storage), and,
for a broker that needs a server, a check that says why it cannot run. What a broker does not
do is declared in its own `Capabilities` (a false flag or a `gaps` entry with the reason);
tests that need it carry `@pytest.mark.needs("flag")` and skip with that reason printed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from errands.brokers import from_url
from errands.brokers.contract import Broker, Capabilities
from errands.clock import Clock


@dataclass(frozen=True)
class Entry:
    """One broker under test."""

    name: str
    #: A URL for storage of its own, fresh for each test (`directory` is the test's tmp_path).
    url: Callable[[Path], str]
    #: None when the broker can run here, else why not (its server is not reachable).
    unavailable: Callable[[], str | None] = lambda: None


KIT: dict[str, Entry] = {}


def register(entry: Entry) -> None:
    """Add a broker to every conformance test."""
    KIT[entry.name] = entry


register(Entry("memory", lambda directory: "memory://"))
register(Entry("sqlite", lambda directory: f"sqlite:///{directory / 'errands.db'}"))


def open_broker(name: str, clock: Clock, directory: Path) -> Broker:
    """A broker of kit entry `name` on the storage for `directory`, not yet opened."""
    return from_url(KIT[name].url(directory), clock=clock)


def lacks(capabilities: Capabilities, need: str) -> str | None:
    """Why a broker with `capabilities` cannot run a test that needs `need`, or None."""
    if need in capabilities.gaps:
        return f"{capabilities.name} lacks {need}: {capabilities.gaps[need]}"
    flag = getattr(capabilities, need, None)
    if flag is False:
        return f"{capabilities.name} lacks {need} ({need}=False in its Capabilities)"
    if flag is None and not hasattr(capabilities, need):
        raise ValueError(f"unknown capability {need!r} in a needs() marker")
    return None
