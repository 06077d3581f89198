"""Tasks for the process-pool tests: importable, so children find them through `app.locate()`.

The memory broker lives in the test's process only; children never open it.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import errands
from errands.settings import Settings

app = errands.App("memory://")


@app.task(pool="process")
def cpu(n: int) -> dict[str, int]:
    """Some arithmetic, and the pid of the process that did it."""
    return {"pid": os.getpid(), "value": sum(i * i for i in range(n))}


@app.task(pool="process", max_crashes=2)
def exits(code: int) -> None:
    """Ends its process at once, as a segfault or an abort in C code would."""
    os._exit(code)


@app.task(pool="process", timeout=timedelta(milliseconds=200), max_attempts=1)
def oversleeps() -> str:
    """Sleeps past its soft limit: errands.Timeout is raised inside it."""
    time.sleep(30)
    return "woke"


@app.task(pool="process", timeout=timedelta(milliseconds=200), max_attempts=1)
def shrugs() -> str:
    """Catches its soft limit and returns a value anyway."""
    try:
        time.sleep(30)
    except errands.Timeout:
        return "returned after the limit"
    return "woke"


#: A second App whose hard limit comes 0.3 s after the soft one, so a kill test is quick.
impatient = errands.App(
    "memory://", settings=Settings(hard_timeout_margin=timedelta(milliseconds=300))
)


@impatient.task(pool="process", timeout=timedelta(milliseconds=200), max_attempts=1)
def stubborn() -> str:
    """Ignores its soft limit; the parent kills its child at the hard limit."""
    try:
        time.sleep(30)
    except errands.Timeout:
        time.sleep(30)
    return "woke"


@impatient.task(pool="process")
def pid() -> int:
    """The pid of the child that ran it."""
    return os.getpid()
