"""The `errands` command group: one subcommand per module of this package.

Each subcommand parses, calls the App or its broker, and prints; none holds queue logic.
"""

from __future__ import annotations

import click

from errands import __version__

from .demo import demo_command
from .dlq import dlq_group
from .exchanges import exchanges_group
from .jobs import jobs_group
from .migrate import migrate_command
from .scheduler import scheduler_command
from .schedules import schedules_group
from .serve import serve_command
from .worker import catch_early_signals, worker_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="errands")
@click.option(
    "--app-dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    envvar="ERRANDS_APP_DIR",
    help="Directory put first on sys.path to import TARGET from.",
)
@click.pass_context
def main(ctx: click.Context, app_dir: str) -> None:
    """errands: a durable task queue. TARGET is "module:app" (or ERRANDS_APP)."""
    if ctx.invoked_subcommand in ("worker", "scheduler"):
        # Before TARGET is imported (which can take a while): a stop during start-up drains.
        catch_early_signals()


main.add_command(worker_command)
main.add_command(jobs_group)
main.add_command(dlq_group)
main.add_command(demo_command)
main.add_command(migrate_command)
main.add_command(scheduler_command)
main.add_command(schedules_group)
main.add_command(exchanges_group)
main.add_command(serve_command)
