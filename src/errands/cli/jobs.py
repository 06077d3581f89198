"""`errands jobs`: list, show and cancel the jobs of a TARGET's broker.

It also holds what `errands dlq` shares with it: running one broker verb for a command,
looking jobs up by id, and turning jobs into table rows or JSON lines.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from enum import Enum
from typing import TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from errands.app import App
from errands.brokers.contract import Broker, JobQuery
from errands.errors import ErrandsError
from errands.job import AttemptError, Job, JobState, Progress

from .target import Target, stored_target_argument

T = TypeVar("T")
STATES = tuple(state.value for state in JobState)


def broker_call(app: App, verb: Callable[[Broker], Awaitable[T]]) -> T:
    """Run one broker verb on the App's portal; an errands error exits 1 with its message."""
    try:
        # Made here, not on the portal: a bad URL is then one line, with no failed open left.
        _ = app.broker
        return app.portal.call(app.call_broker, verb)
    except ErrandsError as error:
        raise click.ClickException(str(error)) from None


def known_jobs(app: App, job_ids: Sequence[str]) -> list[Job]:
    """The jobs with these ids; any unknown id exits 1 naming it (nothing is changed)."""
    wanted = list(dict.fromkeys(job_ids))
    jobs = broker_call(app, lambda b: b.get(wanted))
    found = {job.id for job in jobs}
    missing = [job_id for job_id in wanted if job_id not in found]
    if missing:
        names = ", ".join(repr(job_id) for job_id in missing)
        raise click.ClickException(f"no job with id {names}")
    return jobs


def as_json(job: Job) -> str:
    """One job as a JSON object on one line (no payload or result bytes)."""
    error = job.last_error
    return json.dumps(
        {
            "id": job.id,
            "task": job.task,
            "queue": job.queue,
            "state": job.state.value,
            "fail_reason": _text(job.fail_reason) or None,
            "cancel_reason": _text(job.cancel_reason) or None,
            "attempt": job.attempt,
            "failures": job.failures,
            "crashes": job.crashes,
            "max_attempts": job.max_attempts,
            "enqueued_at": _text(job.enqueued_at) or None,
            "finished_at": _text(job.finished_at) or None,
            "idempotency_key": job.idempotency_key,
            "workflow_id": job.workflow_id,
            "progress": (
                {"fraction": job.progress.fraction, "message": job.progress.message}
                if job.progress
                else None
            ),
            "last_error": (
                {"kind": error.kind.value, "type": error.type, "message": error.message}
                if error
                else None
            ),
        }
    )


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A rich table on stdout; cells are plain text (never parsed as markup)."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column == "id")
    for row in rows:
        table.add_row(*(Text(_cell(cell)) for cell in row))
    console = Console()
    if not console.is_terminal:
        # Piped output has no width to fit; folding every cell at 80 columns helps no one.
        console = Console(width=max(console.width, 200))
    console.print(table)


def plural(count: int, noun: str) -> str:
    """ "1 job", "2 jobs"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _cell(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")  # tables are for eyes; JSON keeps it all
    return _text(value)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, Progress):
        return f"{value.fraction:.0%} {value.message}".strip()
    return str(value)


# -- the commands ----------------------------------------------------------------------------


@click.group("jobs")
def jobs_group() -> None:
    """Inspect and cancel jobs."""


@jobs_group.command("list")
@stored_target_argument
@click.option(
    "--state",
    "states",
    type=click.Choice(STATES),
    multiple=True,
    help="Only jobs in this state (repeatable).",
)
@click.option("--queue", help="Only jobs of this queue.")
@click.option("--task", help="Only jobs of this task name.")
@click.option("--workflow", help="Only the jobs of this workflow (its id).")
@click.option("--idempotency-key", help="Only the jobs holding this idempotency key, of any task.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_lines", is_flag=True, help="One JSON object per line.")
def list_command(
    target: Target,
    states: tuple[str, ...],
    queue: str | None,
    task: str | None,
    workflow: str | None,
    idempotency_key: str | None,
    limit: int,
    as_lines: bool,
) -> None:
    """List jobs, newest first."""
    query = JobQuery(
        queue=queue,
        states=tuple(JobState(s) for s in states),
        task=task,
        workflow=workflow,
        idempotency_key=idempotency_key,
        limit=limit,
    )
    page = broker_call(target.app, lambda b: b.list_jobs(query))
    if as_lines:
        for job in page.jobs:
            click.echo(as_json(job))
        return
    rows = [
        (j.id, j.task, j.queue, j.state, j.attempt, j.progress, j.enqueued_at, j.finished_at)
        for j in page.jobs
    ]
    columns = ("id", "task", "queue", "state", "attempt", "progress", "enqueued_at", "finished_at")
    print_table(plural(len(rows), "job"), columns, rows)


@jobs_group.command("show")
@stored_target_argument
@click.argument("job_id", metavar="ID")
def show_command(target: Target, job_id: str) -> None:
    """Every field of one job, and each failed attempt with its traceback."""
    [job] = known_jobs(target.app, [job_id])
    width = max(len(name) for name in job.__struct_fields__)
    for name in job.__struct_fields__:
        if name != "errors":
            click.echo(f"{name:<{width}}  {_text(getattr(job, name)) or '-'}")
    click.echo(f"{'errors':<{width}}  {len(job.errors) or '-'}")
    for error in job.errors:
        click.echo(_describe(error))


def _describe(error: AttemptError) -> str:
    when = f", {_text(error.at)}" if error.at else ""
    head = f"\nattempt {error.attempt} ({error.kind.value}{when})"
    body = f"{error.type}: {error.message}"
    trace = error.traceback.rstrip()
    return "\n".join(part for part in (head, body, trace) if part)


@jobs_group.command("cancel")
@stored_target_argument
@click.argument("job_ids", metavar="ID...", nargs=-1, required=True)
def cancel_command(target: Target, job_ids: tuple[str, ...]) -> None:
    """Cancel jobs: waiting ones at once, running ones by a request their worker obeys."""
    known = known_jobs(target.app, job_ids)
    jobs = broker_call(target.app, lambda b: b.cancel([job.id for job in known]))
    for job in jobs:
        click.echo(f"{job.id}  {_cancel_result(job)}")


def _cancel_result(job: Job) -> str:
    if job.state is JobState.CANCELLED:
        return "cancelled"
    if job.state is JobState.RUNNING and job.cancel_requested:
        return "running: cancel requested"
    return f"not cancelled: already {job.state.value}"
