"""A process-pool child's loop: a claimed job in, an Outcome out, until told to stop.

The child imports the App by reference to get its registry; it never opens the broker: the
parent holds every lease and does all broker I/O.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from types import FrameType
from typing import TYPE_CHECKING

import psutil

from errands.brokers.contract import Claimed
from errands.errors import Timeout
from errands.job import Progress
from errands.outcome import Outcome
from errands.worker.execution import Invocation, attempt, prepare, timed_out

if TYPE_CHECKING:
    from errands.app import App

PR_SET_PDEATHSIG = 1
#: Tags a progress report on the pipe; every other message is a job's (outcome, rss).
PROGRESS = "progress"


def main(conn: Connection, app_ref: str, max_jobs: int | None) -> None:
    """Serve jobs from `conn` until a stop message, EOF, or `max_jobs` jobs."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when children stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    app = load_app(app_ref)
    process = psutil.Process()
    served = 0
    while max_jobs is None or served < max_jobs:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        outcome = run_one(message, app, report=functools.partial(_send_progress, conn))
        served += 1
        conn.send((outcome, process.memory_info().rss))


def run_one(
    claimed: Claimed, app: App, report: Callable[[Progress], None] | None = None
) -> Outcome:
    """Decode and run one job under its soft time limit. Once the limit has fired, the attempt
    fails with `timeout` even if the task caught errands.Timeout and returned: as in the other
    pools, a limit ends the attempt whatever the task does after. `report` carries the task's
    progress reports to the parent."""
    prepared = prepare(claimed, app.registry, report)
    if not isinstance(prepared, Invocation):
        return prepared
    limit = prepared.timeout.total_seconds() if prepared.timeout else 0.0
    with _soft_limit(limit, prepared.task.name) as fired:
        outcome = attempt(claimed, prepared)
    if fired:
        return timed_out(claimed, prepared, "soft time limit")
    return outcome


@contextlib.contextmanager
def _soft_limit(seconds: float, name: str) -> Iterator[list[bool]]:
    """Raise errands.Timeout in the task at `seconds`; the yielded list is true once it fired."""
    fired: list[bool] = []
    if seconds <= 0:
        yield fired
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        fired.append(True)
        raise Timeout(f"{name} ran past its {seconds:g}s soft time limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _send_progress(conn: Connection, progress: Progress) -> None:
    conn.send((PROGRESS, progress))


def load_app(app_ref: str) -> App:
    """Import "module:attr"; a script's __main__ is found under the name multiprocessing gives."""
    module_name, _, attr = app_ref.partition(":")
    if module_name == "__main__":
        module = sys.modules.get("__mp_main__") or sys.modules["__main__"]
    else:
        module = importlib.import_module(module_name)
    app: App = getattr(module, attr)
    return app


def _die_with_parent() -> None:
    # Linux only: the kernel kills this child when the worker dies, so no child outlives it.
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:
            os._exit(0)
