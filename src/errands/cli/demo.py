"""`errands demo`: run the treasure hunt (errands/demo.py) and draw it with rich.

Needs no TARGET and no server: the files and the SQLite broker live in a temporary directory,
removed at the end unless --keep. `--broker URL` runs the same hunt on another broker
(`redis://127.0.0.1:6379/0?prefix=demo`, say).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from errands.brokers import check_url
from errands.job import JobState

from .jobs import plural
from .worker import masked

if TYPE_CHECKING:
    from errands.demo import Hunt, Report

PHASES = {"files": "writing files", "jobs": "searching"}


@click.command("demo")
@click.option(
    "--files",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Files to search.",
)
@click.option(
    "--chunk",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Files per search job.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    help="Process pool children.  [default: CPU count, at least 2]",
)
@click.option("--seed", type=int, help="Makes the files, and where the treasure is, repeatable.")
@click.option("--keep", is_flag=True, help="Keep the temporary directory (files and database).")
@click.option(
    "--broker",
    "broker_url",
    metavar="URL",
    help="Broker URL, e.g. redis://127.0.0.1:6379/0?prefix=demo.  "
    "[default: a SQLite file in the temporary directory]",
)
def demo_command(
    files: int,
    chunk: int,
    processes: int | None,
    seed: int | None,
    keep: bool,
    broker_url: str | None,
) -> None:
    """A treasure hunt: search many small files for the one holding "treasure", in parallel.

    Search jobs over ranges of files are enqueued in one write and run by a process-pool
    worker; the first job to find the treasure has every other job cancelled.
    """
    # Imported here: the demo module makes its App at import, which other commands never need.
    from errands.demo import Hunt, hunt

    if broker_url is not None:
        try:
            check_url(broker_url)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--broker") from error
    console = Console(highlight=False, soft_wrap=True)
    seed = seed if seed is not None else random.randrange(2**32)
    root = Path(tempfile.mkdtemp(prefix="errands-demo-"))
    plan = Hunt(
        directory=root / "files",
        broker_url=broker_url or f"sqlite:///{root / 'errands-demo.db'}",
        files=files,
        chunk=chunk,
        processes=processes or max(2, os.cpu_count() or 1),
        seed=seed,
    )
    _introduce(console, plan)
    try:
        with _progress(console) as progress:
            bars = {
                name: progress.add_task(label, total=None, start=False)
                for name, label in PHASES.items()
            }

            def on_progress(phase: str, done: int, total: int) -> None:
                progress.start_task(bars[phase])  # its clock starts with its first report
                progress.update(bars[phase], completed=done, total=total)

            report = asyncio.run(hunt(plan, on_progress))
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    if report.tally.treasure is None:
        raise click.ClickException("no job found the treasure")
    if report.tally.treasure != report.planted:
        raise click.ClickException(
            f"a job returned {report.tally.treasure}, but the treasure is in {report.planted}"
        )
    _conclude(console, report, root if keep else None)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        refresh_per_second=10,
    )


def _introduce(console: Console, plan: Hunt) -> None:
    from errands.demo import WORD

    jobs = math.ceil(plan.files / plan.chunk)
    console.print(
        f"[bold]errands demo[/]: a treasure hunt over {plan.files:,} files (seed {plan.seed})"
    )
    console.print(
        f"  files   {plan.directory}  (exactly one holds the word {WORD!r})", markup=False
    )
    console.print(f"  broker  {masked(plan.broker_url)}", markup=False)
    console.print(
        f"  jobs    {jobs:,} searches of up to {plural(plan.chunk, 'file')}, "
        "enqueued in one enqueue_many"
    )
    console.print(f"  worker  in this process, process pool of {plan.processes} children")


def _conclude(console: Console, report: Report, kept: Path | None) -> None:
    tally = report.tally
    console.print(f"found the treasure in {tally.treasure}", markup=False)
    completed = tally.states[JobState.COMPLETED]
    cancelled = tally.states[JobState.CANCELLED]
    console.print(
        f"  by job {tally.found_by}; {completed} of {tally.jobs} jobs completed, {cancelled} "
        f"cancelled ({cancelled - tally.cancelled_running} waiting, "
        f"{tally.cancelled_running} running)"
    )
    others = {
        s.value: n
        for s, n in tally.states.items()
        if s not in (JobState.COMPLETED, JobState.CANCELLED)
    }
    if others:
        console.print(f"  other job states: {others}")
    console.print(
        f"  search took {_seconds(tally.search_took)} (enqueue to treasure); writing the files "
        f"{_seconds(report.files_took)}; the whole demo {_seconds(report.total_took)}"
    )
    if kept is not None:
        console.print(f"  kept {kept}", markup=False)


def _seconds(duration: timedelta) -> str:
    return f"{duration.total_seconds():.2f} s"
