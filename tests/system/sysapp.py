"""Tasks run by worker subprocesses in the system tests; they write to a ledger file."""

from __future__ import annotations

import os
import time

import errands
from tests.system.ledger import record

app = errands.App()  # ERRANDS_BROKER_URL is set by the test
LEDGER = os.environ.get("ERRANDS_TEST_LEDGER", "/dev/null")


@app.task(name="sleeper")
def sleeper(key: str, seconds: float) -> str:
    record(LEDGER, "start", key)
    time.sleep(seconds)
    record(LEDGER, "end", key)
    return key


@app.task(name="sleeper_once")
def sleeper_once(key: str, seconds: float) -> str:
    """Sleeps `seconds` on its first start only, so a re-run after a crash ends quickly."""
    with open(LEDGER) as ledger:
        first = not any(line.split()[1] == key for line in ledger.read().splitlines())
    record(LEDGER, "start", key)
    time.sleep(seconds if first else 0)
    record(LEDGER, "end", key)
    return key


@app.task(name="cpu_sleeper_once", pool="process")
def cpu_sleeper_once(key: str, seconds: float) -> str:
    """Like sleeper_once, for the process pool."""
    return sleeper_once.fn(key, seconds)
