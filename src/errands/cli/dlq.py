"""`errands dlq`: the dead letters (jobs in the `failed` state): list, retry, purge.

Every action is a broker verb (list_jobs, requeue, purge), so it works alike on every broker
and while workers run; how jobs are shown is shared with `errands jobs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import click

from errands.app import App
from errands.brokers.contract import JobQuery, Page
from errands.job import JobId, JobState

from .jobs import as_json, broker_call, known_jobs, plural, print_table
from .target import Target, stored_target_argument

FAILED = (JobState.FAILED,)
#: Jobs per broker call when paging through or requeueing the whole dead-letter state.
BATCH = 500


@click.group("dlq")
def dlq_group() -> None:
    """Dead letters: jobs that ended `failed`, with their reason and last error."""


@dlq_group.command("list")
@stored_target_argument
@click.option("--queue", help="Only this queue.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_lines", is_flag=True, help="One JSON object per line.")
def list_command(target: Target, queue: str | None, limit: int, as_lines: bool) -> None:
    """List failed jobs, newest first."""
    query = JobQuery(queue=queue, states=FAILED, limit=limit)
    page = broker_call(target.app, lambda b: b.list_jobs(query))
    if as_lines:
        for job in page.jobs:
            click.echo(as_json(job))
        return
    rows = []
    for job in page.jobs:
        error = job.last_error
        last = f"{error.type}: {error.message}" if error else ""
        rows.append((job.id, job.task, job.queue, job.fail_reason, job.attempt, last))
    columns = ("id", "task", "queue", "reason", "attempts", "last error")
    print_table(plural(len(rows), "failed job"), columns, rows)


@dlq_group.command("retry")
@stored_target_argument
@click.argument("job_ids", metavar="[ID]...", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Retry every failed job.")
@click.option("--queue", help="With --all: only this queue.")
def retry_command(target: Target, job_ids: tuple[str, ...], every: bool, queue: str | None) -> None:
    """Run failed jobs again (fresh attempt and crash budgets): by ID, or --all."""
    if every == bool(job_ids):
        raise click.UsageError("give job IDs or --all (not both)")
    if queue is not None and not every:
        raise click.UsageError("--queue goes with --all")
    ids = _all_failed(target.app, queue) if every else _failed_by_id(target.app, job_ids)
    requeued = sum(_requeue(target.app, ids[i : i + BATCH]) for i in range(0, len(ids), BATCH))
    click.echo(f"requeued {plural(requeued, 'job')}")


def _requeue(app: App, ids: list[JobId]) -> int:
    jobs = broker_call(app, lambda b: b.requeue(ids))
    # Another operator may have retried or purged some meanwhile: count what moved here.
    return sum(job.state is not JobState.FAILED for job in jobs)


def _failed_by_id(app: App, job_ids: Sequence[str]) -> list[JobId]:
    jobs = known_jobs(app, job_ids)
    wrong = [job for job in jobs if job.state is not JobState.FAILED]
    if wrong:
        named = ", ".join(f"{job.id!r} is {job.state.value}" for job in wrong)
        raise click.ClickException(f"only failed jobs can be retried: {named}")
    return [job.id for job in jobs]


def _all_failed(app: App, queue: str | None) -> list[JobId]:
    ids: list[JobId] = []
    query: JobQuery | None = JobQuery(queue=queue, states=FAILED, limit=BATCH)
    while query is not None:
        page = _page(app, query)
        ids.extend(job.id for job in page.jobs)
        query = replace(query, before_id=page.next_cursor) if page.next_cursor else None
    return ids


def _page(app: App, query: JobQuery) -> Page:
    return broker_call(app, lambda b: b.list_jobs(query))


@dlq_group.command("purge")
@stored_target_argument
@click.option("--queue", help="Only this queue.  [default: every queue]")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge_command(target: Target, queue: str | None, yes: bool) -> None:
    """Delete failed jobs for good."""
    counts = broker_call(target.app, lambda b: b.counts([queue] if queue else None))
    doomed = {
        name: states.get(JobState.FAILED, 0)
        for name, states in counts.by_queue.items()
        if states.get(JobState.FAILED, 0)
    }
    if not doomed:
        click.echo("no failed jobs")
        return
    where = ", ".join(sorted(doomed))
    if not yes:
        click.confirm(f"Delete {sum(doomed.values())} failed jobs in {where}?", abort=True)
    deleted = sum(_purge(target.app, name) for name in sorted(doomed))
    click.echo(f"deleted {plural(deleted, 'failed job')} ({where})")


def _purge(app: App, queue: str) -> int:
    return broker_call(app, lambda b: b.purge(queue, FAILED))
