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


# -- chaos suite (tests/system/chaos) ----------------------------------------------------------
# Tasks write to a timed ledger (tests/system/chaos/ledger.py): each line carries the worker's
# tag, so a start in a process-pool child is tied to the worker that ran it.

import asyncio  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

from tests.system.chaos.ledger import record_timed  # noqa: E402

CHAOS_LEDGER = os.environ.get("ERRANDS_TEST_CHAOS_LEDGER", "/dev/null")
WORKER_TAG = os.environ.get("ERRANDS_TEST_WORKER_TAG", "-")
CHAOS_CRASHES = 1000  # kills are the point: a job is never dead-lettered for them


class SkewedClock:
    """The system clock moved by `offset`: a worker host whose clock is wrong.

    It has no `drives_brokers`, so an App built with it keeps its broker on the broker's own
    (here: the system) clock.
    """

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        """System now + offset."""
        return datetime.now(UTC) + self.offset

    def monotonic(self) -> float:
        """`time.monotonic()` (a skew moves the wall clock only)."""
        return time.monotonic()

    async def sleep(self, delay: timedelta) -> None:
        """`asyncio.sleep` for `delay`."""
        await asyncio.sleep(max(0.0, delay.total_seconds()))


CLOCK_SKEW = timedelta(seconds=float(os.environ.get("ERRANDS_TEST_CLOCK_SKEW", "0")))
skewed_app = errands.App(clock=SkewedClock(CLOCK_SKEW))  # worker target "...sysapp:skewed_app"


def _rerun(key: str, rerun_seconds: float | None) -> bool:
    """True when `key` started before (a marker file per key; only for jobs that ask)."""
    if rerun_seconds is None:
        return False
    marks = f"{CHAOS_LEDGER}.marks"
    os.makedirs(marks, exist_ok=True)
    try:
        os.close(os.open(os.path.join(marks, key), os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return True
    return False


def chaos_sleep(key: str, seconds: float, rerun_seconds: float | None = None) -> str:
    """Blocks `seconds` (`rerun_seconds` on a re-run, when given), between two ledger lines."""
    pause = rerun_seconds if _rerun(key, rerun_seconds) else seconds
    record_timed(CHAOS_LEDGER, "start", key, WORKER_TAG)
    time.sleep(pause or 0.0)
    record_timed(CHAOS_LEDGER, "end", key, WORKER_TAG)
    return key


async def chaos_async_sleep(key: str, seconds: float, rerun_seconds: float | None = None) -> str:
    """The coroutine twin of chaos_sleep."""
    pause = rerun_seconds if _rerun(key, rerun_seconds) else seconds
    record_timed(CHAOS_LEDGER, "start", key, WORKER_TAG)
    await asyncio.sleep(pause or 0.0)
    record_timed(CHAOS_LEDGER, "end", key, WORKER_TAG)
    return key


def chaos_spin(key: str, seconds: float) -> str:
    """CPU-bound for `seconds`: a busy loop that never sleeps or releases the core."""
    record_timed(CHAOS_LEDGER, "start", key, WORKER_TAG)
    deadline, spins = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        spins += sum(range(1000)) > 0
    record_timed(CHAOS_LEDGER, "end", key, WORKER_TAG)
    return key


def chaos_clock_offset() -> int:
    """Seconds the worker's App clock is ahead of the system clock (its ERRANDS_TEST_CLOCK_SKEW
    when it serves skewed_app)."""
    return round((skewed_app.clock.now() - datetime.now(UTC)).total_seconds())


for _chaos_app in (app, skewed_app):
    _chaos_app.task(name="chaos_sleep", max_crashes=CHAOS_CRASHES)(chaos_sleep)
    _chaos_app.task(name="chaos_async_sleep", max_crashes=CHAOS_CRASHES)(chaos_async_sleep)
    _chaos_app.task(name="chaos_spin", max_crashes=CHAOS_CRASHES, pool="process")(chaos_spin)
    _chaos_app.task(name="chaos_clock_offset")(chaos_clock_offset)
chaos_sleeper = app.get_task("chaos_sleep")
chaos_async_sleeper = app.get_task("chaos_async_sleep")
chaos_spinner = app.get_task("chaos_spin")
chaos_clock_offsetter = app.get_task("chaos_clock_offset")


@app.task(name="noop")
async def noop() -> None:
    """Nothing: for tests that measure when a job starts, not what it does."""


# -- cancelling a running job (tests/system/test_cancel.py) ------------------------------------


@app.task(name="cancel_async")
async def cancel_async(key: str) -> None:
    """Waits a minute; a cancel ends it at its await, and the ledger says when."""
    record(LEDGER, "start", key)
    try:
        await asyncio.sleep(60)
    finally:
        record(LEDGER, "stopped", key)


@app.task(name="cancel_thread", pool="thread")
def cancel_thread(key: str) -> None:
    """Works in small steps for up to a minute, checking the cancel flag between them."""
    record(LEDGER, "start", key)
    deadline = time.monotonic() + 60
    while not errands.current_job().cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    record(LEDGER, "stopped", key)


@app.task(name="cancel_process", pool="process")
def cancel_process(key: str) -> None:
    """Sleeps a minute in a child process (the ledger has the child's pid); a cancel kills it."""
    record(LEDGER, "start", key)
    time.sleep(60)


# -- limits enforced by the claim (tests/system/test_limits.py) --------------------------------
# Both write the timed ledger format to LEDGER (the test reads it with TimedLedger).


@app.task(name="rated", rate_limit="10/s")
def rated(key: str) -> None:
    """Records its start: at most ten a second, across every worker."""
    record_timed(LEDGER, "start", key, WORKER_TAG)
    record_timed(LEDGER, "end", key, WORKER_TAG)


@app.task(name="capped", concurrency_limit=2)
def capped(key: str, seconds: float) -> None:
    """Records its start and end: never more than two at once, across every worker."""
    record_timed(LEDGER, "start", key, WORKER_TAG)
    time.sleep(seconds)
    record_timed(LEDGER, "end", key, WORKER_TAG)
