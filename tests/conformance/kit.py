"""The conformance kit: the contract suite runs against every broker of the one registry in
tests/brokers/registry.py (a broker joins there, with one `register`).

What a broker does not do is declared in its own `Capabilities` (a false flag or a `gaps` entry
with the reason); tests that need it carry `@pytest.mark.needs("flag")` and skip with that
reason printed.
"""

from __future__ import annotations

from pathlib import Path

from errands.brokers import from_url
from errands.brokers.contract import Broker, Capabilities
from errands.clock import Clock
from tests.brokers.registry import REGISTRY as KIT

#: Capabilities a broker has unless its `gaps` names them (no flag of their own).
GAPS = frozenset({"workflows", "limits"})


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
    if flag is None and not hasattr(capabilities, need) and need not in GAPS:
        raise ValueError(f"unknown capability {need!r} in a needs() marker")
    return None
