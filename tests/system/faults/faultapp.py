"""Tasks run by worker subprocesses in the fault tests: quiet ones, and poison that kills its
process.

The broker URL comes from ERRANDS_BROKER_URL, set by the test. A `sqlite:` URL has no
`max_page_count` option, so ERRANDS_TEST_MAX_PAGE_COUNT (a test-only hook) builds the broker
with that size cap instead; it is the only way to give a worker subprocess a capped database.
"""

from __future__ import annotations

import os
import resource
import signal
import time

import errands
from errands.brokers.sqlite.broker import SQLiteBroker, parse_url
from tests.system.faults.trail import record

TRAIL = os.environ.get("ERRANDS_TEST_TRAIL", "/dev/null")
MB = 1024 * 1024


def _app() -> errands.App:
    pages = os.environ.get("ERRANDS_TEST_MAX_PAGE_COUNT")
    if not pages:
        return errands.App()
    url = errands.Settings.from_env().broker_url
    path, options = parse_url(url)
    return errands.App(url, broker=SQLiteBroker(path, max_page_count=int(pages), **options))


app = _app()


# -- quiet tasks -------------------------------------------------------------------------------


@app.task(name="noop")
def noop(i: int) -> int:
    return i


@app.task(name="add_one")
def add_one(x: int) -> int:
    """Arguments of the wrong type bind (Python checks no annotations) and then raise here."""
    return x + 1


@app.task(name="sleeper")
def sleeper(key: str, seconds: float) -> str:
    record(TRAIL, "start", key)
    time.sleep(seconds)
    record(TRAIL, "end", key)
    return key


# -- poison: each records its start, then takes its process down ------------------------------


@app.task(name="exit_child", pool="process")
def exit_child(key: str, code: int) -> None:
    record(TRAIL, "start", key)
    os._exit(code)


@app.task(name="kill_self", pool="process")
def kill_self(key: str) -> None:
    record(TRAIL, "start", key)
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(name="abort_self", pool="process")
def abort_self(key: str) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file to write
    record(TRAIL, "start", key)
    os.abort()


@app.task(name="hog_memory", pool="process")
def hog_memory(key: str, chunk_mb: int, cap_mb: int) -> int:
    """Grows by `chunk_mb` every 10 ms, touching every page, up to `cap_mb`, then idles:
    only the worker's hard memory limit ends it."""
    record(TRAIL, "start", key)
    chunks = []
    while len(chunks) * chunk_mb < cap_mb:
        chunks.append(b"\x01" * (chunk_mb * MB))  # written, so it counts in RSS
        record(TRAIL, "grow", key)
        time.sleep(0.01)
    time.sleep(120)
    return len(chunks)
