"""Fixtures for the chaos suite: tagged worker processes, a timed ledger, signals on record.

The producer App, the plain ledger and the broker come from tests/system/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

import errands
from errands.job import Job, JobId
from errands.task import Call
from tests.system.chaos.checker import (
    Interruption,
    Report,
    check,
    fetch_jobs,
    wait_terminal,
)
from tests.system.chaos.ledger import TimedLedger
from tests.system.conftest import ROOT, Workers
from tests.system.ledger import Ledger


@dataclass
class Started:
    """One worker process the test started, and the tag its jobs write to the ledger."""

    index: int
    tag: str
    proc: subprocess.Popen[bytes]
    signalled: bool = False

    @property
    def pid(self) -> int:
        """The worker's pid."""
        return self.proc.pid

    @property
    def alive(self) -> bool:
        """Still running."""
        return self.proc.poll() is None


class ChaosWorkers(Workers):
    """Workers with a tag each (ERRANDS_TEST_WORKER_TAG), the chaos ledger and extra env; every
    signal sent through here is kept as an Interruption for the checker."""

    def __init__(
        self, tmp_path: Path, url: str, ledger: Ledger, chaos: TimedLedger, env: dict[str, str]
    ) -> None:
        super().__init__(tmp_path, url, ledger)
        self.chaos, self.extra_env = chaos, env
        self.started: list[Started] = []
        self.interruptions: list[Interruption] = []

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "ERRANDS_TEST_CHAOS_LEDGER": str(self.chaos.path),
            "ERRANDS_TEST_WORKER_TAG": f"w{len(self.procs)}",
            **self.extra_env,
        }

    def launch(
        self,
        *args: str,
        lease: float,
        env: dict[str, str] | None = None,
        target: str = "tests.system.sysapp:app",
    ) -> Started:
        """Start one `errands worker TARGET` (its log is worker-<index>.log)."""
        index = len(self.procs)
        log = open(self.tmp_path / f"worker-{index}.log", "wb")  # noqa: SIM115 (the child's)
        proc = subprocess.Popen(
            [sys.executable, "-m", "errands", "worker", target, "--lease", str(lease), *args],
            env={**self.env(), **(env or {})},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append(proc)
        one = Started(index, f"w{index}", proc)
        self.started.append(one)
        return one

    def log_tail(self, tag: str, lines: int = 30) -> str:
        """The last lines of a worker's log, for a failure message."""
        one = next(w for w in self.started if w.tag == tag)
        text = (self.tmp_path / f"worker-{one.index}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def live(self) -> list[Started]:
        """Workers running and not yet signalled by the test."""
        return [w for w in self.started if w.alive and not w.signalled]

    def wait_ready(self, one: Started, within: timedelta = timedelta(seconds=30)) -> None:
        """Wait until the worker logged that it started claiming."""
        self.wait_log(one.index, "started: queues=", within)

    def kill_worker(self, one: Started) -> Interruption:
        """SIGKILL the worker (its process-pool children die with it) and reap it."""
        cut = Interruption("kill-worker", time.time(), one.pid, one.tag)
        one.signalled = True
        one.proc.send_signal(signal.SIGKILL)
        self.interruptions.append(cut)
        one.proc.wait(timeout=30)
        return cut

    def kill_child(self, one: Started, pid: int) -> Interruption | None:
        """SIGKILL one process-pool child of `one` (None if it is not, or no longer, one)."""
        try:
            children = {p.pid for p in psutil.Process(one.pid).children(recursive=True)}
        except psutil.Error:
            return None
        if pid not in children:
            return None
        cut = Interruption("kill-child", time.time(), pid, one.tag)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        self.interruptions.append(cut)
        return cut

    def terminate(self, one: Started, grace: float) -> Interruption:
        """SIGTERM the worker: it drains for `grace` seconds, then releases what is left."""
        cut = Interruption("sigterm", time.time(), one.pid, one.tag, grace=grace)
        one.signalled = True
        one.proc.send_signal(signal.SIGTERM)
        self.interruptions.append(cut)
        return cut

    def stop_gracefully(self, within: timedelta = timedelta(seconds=30)) -> dict[str, int | None]:
        """SIGTERM every worker still running; returns each one's exit code by tag.

        A worker still starting up is first awaited: before its handlers are installed, SIGTERM
        would end it the default way (exit -15) instead of draining it.
        """
        for one in self.started:
            if one.alive and not one.signalled:
                self.wait_ready(one, within)
                one.proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        deadline = time.monotonic() + within.total_seconds()
        killed = {cut.tag for cut in self.interruptions if cut.kind == "kill-worker"}
        for one in self.started:
            if one.tag in killed:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                one.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            codes[one.tag] = one.proc.returncode
        return codes

    def finish(
        self,
        name: str,
        app: errands.App,
        ledger: TimedLedger,
        acknowledged: Mapping[str, JobId],
        *,
        within: timedelta,
        began: float | None = None,
        bound: float | None = None,
    ) -> Finished:
        """The end of every chaos run: wait until every job is terminal, stop the workers,
        read the jobs back and build the checker's report."""
        ids = list(acknowledged.values())
        wait_terminal(app, ids, within)
        codes = self.stop_gracefully()
        jobs = fetch_jobs(app, ids)
        report = check(
            name,
            acknowledged,
            ledger,
            jobs,
            self.interruptions,
            bound=bound,
            broker_url=app.settings.broker_url,
            wall=0.0 if began is None else time.monotonic() - began,
        )
        return Finished(report, jobs, codes)


@dataclass(frozen=True)
class Finished:
    """What a chaos run ended with: the report, the jobs as stored, the workers' exit codes."""

    report: Report
    jobs: list[Job]
    codes: dict[str, int | None]

    def astuple(self) -> tuple[Report, list[Job], dict[str, int | None]]:
        """The three, for unpacking."""
        return self.report, self.jobs, self.codes


@pytest.fixture
def chaos_ledger(tmp_path: Path) -> TimedLedger:
    return TimedLedger(tmp_path / "chaos-ledger.txt")


@pytest.fixture
def chaos_env() -> dict[str, str]:
    """Extra environment for every worker of the test (a test may change it before starting
    workers); leases are kept and rescued on short intervals."""
    return {"ERRANDS_EXTEND_EVERY": "0.3", "ERRANDS_RESCUE_EVERY": "0.3"}


@pytest.fixture
def chaos_workers(
    tmp_path: Path,
    app: errands.App,
    ledger: Ledger,
    chaos_ledger: TimedLedger,
    chaos_env: dict[str, str],
) -> Iterator[ChaosWorkers]:
    pool = ChaosWorkers(tmp_path, app.settings.broker_url, ledger, chaos_ledger, chaos_env)
    yield pool
    pool.stop_all()  # SIGKILL whatever is left; children die with their worker


BATCH_EVERY = 0.05


def seed() -> int:
    """ERRANDS_CHAOS_SEED replays a run; otherwise a fresh seed (printed in the report)."""
    return int(os.environ.get("ERRANDS_CHAOS_SEED") or random.randrange(1 << 30))


def run_timetable(
    app: errands.App,
    make_call: Callable[[str], Call],
    jobs: int,
    rate: float,
    actions: Sequence[tuple[float, Callable[[], bool | None]]],
    *,
    retry_for: timedelta = timedelta(seconds=30),
    until_done: bool = False,
) -> dict[str, JobId]:
    """Enqueue `jobs` calls (keys j00000, j00001, ...) at `rate` per second, a batch every
    50 ms, and run each action at its offset in seconds; returns key -> acknowledged job id.
    An action that returns False is not ready: it is tried again at the next batch, for at
    most `retry_for`, while jobs keep coming (with `until_done`, past `jobs` until every action
    has run).

    A timetable in real time: the load and the faults are the experiment, so it sleeps until the
    next entry instead of awaiting an event.
    """
    per_batch = max(1, round(rate * BATCH_EVERY))
    todo = sorted(actions, key=lambda entry: entry[0])
    acknowledged: dict[str, JobId] = {}
    t0 = time.monotonic()
    made = batches = done = 0
    first_try: dict[int, float] = {}
    while made < jobs or done < len(todo):
        more = made < jobs or (until_done and done < len(todo))
        next_batch = batches * BATCH_EVERY if more else float("inf")
        next_action = todo[done][0] if done < len(todo) else float("inf")
        time.sleep(max(0.0, min(next_batch, next_action) - (time.monotonic() - t0)))
        if next_batch <= next_action:
            keys = [f"j{made + i:05d}" for i in range(max(1, min(per_batch, jobs - made)))]
            handles = app.enqueue_many([make_call(key) for key in keys])
            acknowledged.update(zip(keys, (h.id for h in handles), strict=True))
            made, batches = made + len(keys), batches + 1
        elif todo[done][1]() is False:
            late = time.monotonic() - t0 - first_try.setdefault(done, next_action)
            if late > retry_for.total_seconds():
                raise TimeoutError(f"action {done} of the timetable never became ready")
            todo[done] = (time.monotonic() - t0 + BATCH_EVERY, todo[done][1])
        else:
            done += 1
    return acknowledged
