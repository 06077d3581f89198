"""`errands scheduler`: run a Scheduler for a TARGET until SIGTERM or SIGINT.

Run as many as you like against one broker (on several hosts, for availability): each slot is
enqueued once whichever of them fires it. `errands worker --scheduler` runs one inside a worker.
"""

from __future__ import annotations

import asyncio
import logging

import click

from errands.cli.logs import configure_logging, flush_logs_every
from errands.scheduling.scheduler import Scheduler

from .target import Target, target_argument
from .worker import _EARLY, STOP_SIGNALS, catch_early_signals, log_level_option, run_until_signalled

log = logging.getLogger("errands.cli")


@click.command("scheduler")
@target_argument
@log_level_option
def scheduler_command(target: Target, log_level: str) -> None:
    """Enqueue the periodic jobs of TARGET ("module:app", or ERRANDS_APP) when they are due,
    until SIGTERM or SIGINT."""
    configure_logging(log_level)
    catch_early_signals()
    scheduler = run_until_signalled(target, lambda: serve(target))
    log.info("scheduler stopped after enqueueing %d jobs", scheduler.fired)


async def serve(target: Target) -> Scheduler:
    """Run the scheduler on this loop with SIGTERM and SIGINT asking it to stop."""
    scheduler = Scheduler(target.app)
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, scheduler.stop)
    if _EARLY:
        scheduler.stop()
    flushing = loop.create_task(flush_logs_every())
    try:
        await scheduler.run()
    finally:
        flushing.cancel()
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        await target.app.close_async()
    return scheduler
