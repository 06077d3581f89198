"""The chaos checker: what happened to every acknowledged job, from the ledger and the broker.

Inputs are the job ids whose enqueue returned (keyed by the key each job writes to the ledger),
the timed ledger of runs, the interruptions the test caused (SIGKILLs of workers and of
process-pool children, SIGTERMs) and the broker's final state of each job. The report counts
acknowledged, completed, dead-lettered and lost jobs; ties every duplicate run to an
interruption that cut its earlier run short; and measures recovery latency, from the moment an
interrupted job was free to run again (the kill; the end of the grace for a SIGTERM) to its next
start. `Report.check()` asserts the pass conditions; `str(report)` is the figure for the note.
"""

from __future__ import annotations

import os
import re
import sqlite3
import statistics
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import errands
from errands import JobState
from errands.brokers.sqlite.broker import parse_url
from errands.job import ErrorKind, Job, JobId
from tests.system.chaos.ledger import Run, TimedLedger

#: A worker may have run a job to its end and died before the broker heard of it: the outcome
#: waits in the completer until the next flush. A run that ended this long before its worker was
#: killed is taken as acknowledged, so a later re-run of it is not blamed on that kill.
ACK_SLACK = 2.0
#: A job claimed just before a signal may write its start line just after it (the claim is what
#: counts; in the process pool, the child reads the job from a pipe a moment later).
START_SLACK = 0.5
#: A process-pool child passes the outcome to its parent as soon as the task returns.
CHILD_SLACK = 0.5
#: What integrity_check() says of a broker that has no check of its storage (any but SQLite).
NO_CHECK = "none for this broker"


@dataclass(frozen=True, slots=True)
class Interruption:
    """A signal the test sent: `kill-worker`, `kill-child` or `sigterm`."""

    kind: str
    t: float  # time.time() just before the signal was sent
    pid: int  # the process signalled
    tag: str  # its worker's tag (a child's: the worker that owns it)
    grace: float = 0.0  # for a SIGTERM: running jobs may finish within this

    @property
    def freed_at(self) -> float:
        """When the runs it cut short may run again: at once for a kill, after the grace for
        a SIGTERM (the worker releases what is left, not waiting for the lease to lapse)."""
        return self.t + self.grace

    def cut(self, run: Run) -> bool:
        """True if this signal cut `run` short, or killed its worker before the broker heard
        the outcome."""
        if self.kind == "kill-worker":
            return (
                run.tag == self.tag
                and run.start <= self.t + START_SLACK
                and (run.end is None or run.end >= self.t - ACK_SLACK)
            )
        if self.kind == "kill-child":
            return (
                run.pid == self.pid
                and run.start <= self.t
                and (run.end is None or run.end >= self.t - CHILD_SLACK)
            )
        if self.kind == "sigterm":
            return (
                run.tag == self.tag
                and run.start <= self.t + START_SLACK
                and (run.end is None or run.end >= self.freed_at - 0.05)
            )
        raise ValueError(f"unknown interruption {self.kind!r}")


@dataclass
class Report:
    """One run's figures; `check()` asserts the pass conditions."""

    name: str
    acknowledged: int = 0
    completed: int = 0
    dead_lettered: int = 0
    cancelled: int = 0
    lost: list[str] = field(default_factory=list)
    states: Counter[str] = field(default_factory=Counter)
    runs: int = 0
    duplicated: int = 0  # jobs that started more than once
    extra_runs: int = 0  # starts beyond each job's first
    unattributed: list[str] = field(default_factory=list)
    stray_runs: list[str] = field(default_factory=list)  # never ended, and no signal cut them
    interruptions: Counter[str] = field(default_factory=Counter)
    interrupted_runs: int = 0  # runs a signal stopped before their end
    claims_lost: int = 0  # re-claims cut by a second kill before the job started
    latencies: list[float] = field(default_factory=list)
    worst: str = ""
    bound: float | None = None
    integrity: str = "not checked"  # what integrity_check() found
    wall: float = 0.0
    notes: list[str] = field(default_factory=list)
    recoveries: list[str] = field(default_factory=list)  # one line per re-run after a signal

    @property
    def max_latency(self) -> float:
        """The worst recovery latency in seconds (0 when nothing was interrupted)."""
        return max(self.latencies, default=0.0)

    def __str__(self) -> str:
        lat = sorted(self.latencies)

        def pct(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0.0

        bound = f" (bound {self.bound:.2f}s)" if self.bound is not None else ""
        signals = ", ".join(f"{n} {kind}" for kind, n in sorted(self.interruptions.items()))
        lines = [
            f"== chaos report: {self.name}",
            f"acknowledged {self.acknowledged}  completed {self.completed}  "
            f"dead-lettered {self.dead_lettered}  cancelled {self.cancelled}  "
            f"lost {len(self.lost)}",
            f"final states {dict(sorted(self.states.items()))}",
            f"signals: {signals or 'none'}; runs stopped mid-job {self.interrupted_runs}; "
            f"re-claims killed before their start {self.claims_lost}",
            f"runs {self.runs}  duplicated jobs {self.duplicated}  extra runs {self.extra_runs}  "
            f"unattributed {len(self.unattributed)}  stray runs {len(self.stray_runs)}",
            f"recovery latency: n {len(lat)}  median {statistics.median(lat) if lat else 0:.3f}s"
            f"  p95 {pct(0.95):.3f}s  max {self.max_latency:.3f}s{bound}  {self.worst}",
            f"storage integrity check: {self.integrity}",
            f"wall time {self.wall:.1f}s",
            *self.notes,
        ]
        if os.environ.get("ERRANDS_CHAOS_VERBOSE"):
            lines += self.recoveries
        lines += [f"LOST {x}" for x in self.lost[:10]]
        lines += [f"UNATTRIBUTED {x}" for x in self.unattributed[:10]]
        lines += [f"STRAY {x}" for x in self.stray_runs[:10]]
        return "\n".join(lines)

    def check(self, *, dead_letters: int = 0) -> None:
        """Lost 0; every duplicate tied to a signal; recovery within the bound; nothing left
        running or waiting; the storage intact, where the broker can check it; `dead_letters`
        jobs dead-lettered."""
        assert not self.lost, f"{len(self.lost)} jobs lost\n{self}"
        assert not self.unattributed, f"duplicates no signal explains\n{self}"
        assert not self.stray_runs, f"runs that never ended and were not cut short\n{self}"
        if self.bound is not None:
            assert self.max_latency <= self.bound, f"recovery slower than the bound\n{self}"
        terminal = {str(s) for s in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)}
        left = {s: n for s, n in self.states.items() if s not in terminal}
        assert not left, f"jobs left unfinished: {left}\n{self}"
        assert self.integrity in ("ok", NO_CHECK), f"integrity check: {self.integrity}\n{self}"
        assert self.dead_lettered == dead_letters, f"dead-lettered\n{self}"


def check(
    name: str,
    acknowledged: Mapping[str, JobId],
    ledger: TimedLedger,
    jobs: Sequence[Job],
    interruptions: Sequence[Interruption],
    *,
    broker_url: str,
    bound: float | None = None,
    wall: float = 0.0,
) -> Report:
    """Build the report of one run on the broker at `broker_url`; `acknowledged` maps ledger
    key -> job id."""
    ledger.refresh()
    report = Report(name, acknowledged=len(acknowledged), bound=bound, wall=wall)
    report.interruptions = Counter(i.kind for i in interruptions)
    by_id = {job.id: job for job in jobs}
    all_runs = ledger.all_runs()
    for key, job_id in acknowledged.items():
        job = by_id.get(job_id)
        runs = all_runs.get(key, [])
        state = str(job.state) if job else "missing"
        report.states[state] += 1
        if job is None or not job.state.terminal:
            report.lost.append(f"{key} {job_id} {state}, runs {runs}")
        elif job.state is JobState.COMPLETED:
            report.completed += 1
            if not any(r.end is not None for r in runs):
                report.lost.append(f"{key} {job_id} completed without a finished run: {runs}")
        elif job.state is JobState.FAILED:
            report.dead_lettered += 1
            report.notes.append(f"dead-lettered {key}: {job.fail_reason} {job.last_error}")
        else:
            report.cancelled += 1
    unknown = set(all_runs) - set(acknowledged)
    if unknown:
        report.notes.append(f"runs of {len(unknown)} keys never acknowledged (ignored)")
    claimers = {
        key: claimer_pids(by_id[job_id]) for key, job_id in acknowledged.items() if job_id in by_id
    }
    worst = -1.0
    for key, runs in all_runs.items():
        if key not in acknowledged:
            continue
        report.runs += len(runs)
        if len(runs) > 1:
            report.duplicated += 1
            report.extra_runs += len(runs) - 1
        for i, run in enumerate(runs):
            cause = [x for x in interruptions if x.cut(run)]
            if run.end is None:
                if cause:
                    report.interrupted_runs += 1
                else:
                    report.stray_runs.append(f"{key}: {run}")
            if i == len(runs) - 1:
                continue
            after = runs[i + 1]
            before = [x for x in cause if x.t <= after.start]
            if not before:
                report.unattributed.append(f"{key}: {run} then {after}")
                continue
            first = min(before, key=lambda x: x.t)
            # Rescued, then claimed by a worker that was killed before the job started (the
            # broker's lease_expired errors name each claimer): recovery restarts from that kill.
            again = [
                x
                for x in interruptions
                if x.kind == "kill-worker"
                and x.pid in claimers.get(key, ())
                and first.t < x.t <= after.start
            ]
            if again:
                report.claims_lost += 1
                first = max(again, key=lambda x: x.t)
            latency = after.start - first.freed_at
            report.latencies.append(latency)
            report.recoveries.append(
                f"{key}: {first.kind} {first.pid}/{first.tag} at {first.t:.3f} cut "
                f"{run.pid}/{run.tag} [{run.start:.3f}, {run.end}] -> {after.pid}/{after.tag} "
                f"at {after.start:.3f}: {latency:.3f}s"
            )
            if latency > worst:
                worst = latency
                report.worst = f"(job {key}: {first.kind} pid {first.pid} -> pid {after.pid})"
    report.integrity = integrity_check(broker_url)
    return report


CLAIMER = re.compile(r"lease of worker \S*?:(\d+):[0-9a-f]+ expired")


def claimer_pids(job: Job) -> set[int]:
    """Pids of the workers whose lease on `job` expired (from its attempt errors)."""
    found = (CLAIMER.match(e.message) for e in job.errors if e.kind is ErrorKind.LEASE_EXPIRED)
    return {int(m.group(1)) for m in found if m}


def integrity_check(broker_url: str) -> str:
    """The broker's own check of its storage, "ok" or what is wrong, or NO_CHECK: today only
    SQLite has one, `PRAGMA integrity_check` on the file, through sqlite3 directly."""
    if not broker_url.startswith("sqlite:"):
        return NO_CHECK
    path, _ = parse_url(broker_url)
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()
    return "; ".join(str(row[0]) for row in rows)


# -- the broker's side ----------------------------------------------------------------------------


def fetch_jobs(app: errands.App, ids: Sequence[JobId], chunk: int = 1000) -> list[Job]:
    """The stored jobs with these ids (through the producer App's broker)."""
    jobs: list[Job] = []
    for start in range(0, len(ids), chunk):
        part = list(ids[start : start + chunk])
        jobs += app.portal.call(app.call_broker, lambda b, part=part: b.get(part))
    return jobs


def wait_terminal(app: errands.App, ids: Sequence[JobId], within: timedelta) -> None:
    """Await every job reaching a terminal state, a slice at a time (`wait_done` wakes on each
    finish), or raise TimeoutError with the states left."""
    deadline = time.monotonic() + within.total_seconds()
    pending = list(ids)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            states = Counter(str(j.state) for j in fetch_jobs(app, pending))
            raise TimeoutError(f"{len(pending)} jobs not terminal within {within}: {states}")
        head = pending[:200]
        wait = timedelta(seconds=min(left, 2.0))
        jobs = app.portal.call(app.call_broker, lambda b, h=head, w=wait: b.wait_done(h, w))
        done = {j.id for j in jobs if j.state.terminal}
        pending = [i for i in pending if i not in done] if done else pending
