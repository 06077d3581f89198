"""`errands worker`: run one Worker for a TARGET until SIGTERM or SIGINT, then exit 0.

This module parses options, installs signal handlers and logging, and re-executes itself
when the worker asks for a restart; claiming and running jobs is errands.worker's job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import click

from errands.cli.logs import configure_logging, flush_logs_every
from errands.errors import ErrandsError
from errands.loops import new_event_loop
from errands.task import POOLS, PoolName
from errands.worker import queue_order
from errands.worker.worker import Worker

from .target import Target, target_argument

log = logging.getLogger("errands.cli")
LOG_LEVELS = ("debug", "info", "warning", "error")
#: `--log-level`, shared by every long-running command.
log_level_option = click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
MB = 1024 * 1024
T = TypeVar("T")


if TYPE_CHECKING:
    _QueuesType = click.ParamType[tuple[str, ...] | dict[str, int]]
else:  # click < 8.4 has no generic ParamType to subscript at run time
    _QueuesType = click.ParamType


class QueueList(_QueuesType):
    """ "a,b" -> ("a", "b"); "a=3,b=1" -> {"a": 3, "b": 1} (weights); a bad list is a usage
    error naming the value."""

    name = "a,b|a=3,b=1"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, ...] | dict[str, int]:
        """Split on commas; NAME=WEIGHT gives weights; refuse empty names and bad weights."""
        if isinstance(value, tuple | dict):
            return value
        try:
            return queue_order.parse(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


@click.command("worker")
@target_argument
@click.option(
    "--queues",
    type=QueueList(),
    help="Queues to claim from, comma-separated; NAME=WEIGHT for a weighted random order per "
    "claim (high=3,default=1).  [default: every queue of the app's tasks, by job priority]",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Claim the queues strictly in the order given: a later one only gets free slots.",
)
@click.option(
    "--concurrency", type=click.IntRange(min=1), help="Jobs run at once.  [default: by pool]"
)
@click.option(
    "--pool",
    type=click.Choice(POOLS),
    help="Run every job in this pool.  [default: each task's own]",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="How long running jobs may finish after SIGTERM.  [default: ERRANDS_GRACE or 30]",
)
@click.option(
    "--lease",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Lease of each claimed job.  [default: ERRANDS_LEASE or 4]",
)
@click.option(
    "--processes", type=click.IntRange(min=1), help="Process pool children.  [default: CPU count]"
)
@click.option(
    "--prefetch",
    type=click.IntRange(min=0),
    help="Process pool: jobs claimed ahead per child.  [default: 16, ERRANDS_PREFETCH]",
)
@click.option(
    "--max-jobs-per-child",
    type=click.IntRange(min=1),
    metavar="N",
    help="Replace a child after N jobs.",
)
@click.option(
    "--max-memory",
    type=click.IntRange(min=1),
    metavar="MB",
    help="Replace a child whose RSS passed MB after a job.",
)
@click.option(
    "--max-memory-hard",
    type=click.IntRange(min=1),
    metavar="MB",
    help="Kill a child whose RSS passes MB mid-job (counted as a crash of kind memory).",
)
@click.option(
    "--scheduler",
    "with_scheduler",
    is_flag=True,
    help="Also run a scheduler (any number may run; each slot is enqueued once).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    metavar="PORT",
    help="Serve Prometheus metrics of this worker at http://HOST:PORT/metrics "
    "(needs errands[web]).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    metavar="HOST",
    help="The address --metrics-port listens on (0.0.0.0: every interface).",
)
@log_level_option
def worker_command(
    target: Target,
    queues: tuple[str, ...] | dict[str, int] | None,
    strict: bool,
    concurrency: int | None,
    pool: str | None,
    grace: float | None,
    lease: float | None,
    processes: int | None,
    max_jobs_per_child: int | None,
    max_memory: int | None,
    max_memory_hard: int | None,
    prefetch: int | None,
    with_scheduler: bool,
    metrics_port: int | None,
    metrics_host: str,
    log_level: str,
) -> None:
    """Run a worker for TARGET ("module:app", or ERRANDS_APP) until SIGTERM or SIGINT.

    The first signal stops claiming and lets running jobs finish within the grace; a second
    one releases them at once. The broker URL is the App's (ERRANDS_BROKER_URL by default).
    """
    configure_logging(log_level)
    catch_early_signals()  # again, for callers that skip the group (tests, embedding)
    if strict and isinstance(queues, dict):
        raise click.UsageError("--strict orders plain queue names; weights order them already")
    if queues:
        warn_unused_queues(target, list(queues))
    # Process-pool children import the App the way this process did.
    target.app.import_ref = target.ref
    if metrics_port is not None:
        export_metrics(target, metrics_host, metrics_port)
    if pool == "process" and concurrency is None:
        # Every job runs in a child: one slot per child (and `prefetch` jobs waiting for each).
        concurrency = processes
    options: dict[str, Any] = {
        "queues": queues,
        "strict": True if strict else None,
        "concurrency": concurrency,
        "pool": cast(PoolName | None, pool),
        "grace": timedelta(seconds=grace) if grace is not None else None,
        "lease": timedelta(seconds=lease) if lease is not None else None,
        "processes": processes,
        "max_jobs_per_child": max_jobs_per_child,
        "max_memory": max_memory * MB if max_memory is not None else None,
        "max_memory_hard": max_memory_hard * MB if max_memory_hard is not None else None,
        "prefetch": prefetch,
        "scheduler": True if with_scheduler else None,
    }
    worker = run_until_signalled(target, lambda: serve(target, options))
    if worker.restart_requested:
        restart()
    log.info("worker %s stopped after %d jobs", worker.id, worker.ran)


def export_metrics(target: Target, host: str, port: int) -> None:
    """Serve the worker's metrics from this process; a missing prometheus-client or a port
    in use ends the command with the reason."""
    from errands import metrics

    try:
        metrics.export(target.app, port=port, host=host)
    except (ImportError, OSError) as error:
        raise click.ClickException(f"--metrics-port {port}: {error}") from None


def run_until_signalled(target: Target, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `main()` on a new loop of the App's kind and return its value: the shared body of
    the long-running commands. An errands error exits 1 with its message."""
    try:
        # Made before the loop starts, so a bad URL is one line with no failed open left.
        broker = target.app.broker
        log.info(
            "app %s, %s broker at %s",
            target.ref,
            broker.capabilities.name,
            masked(target.app.settings.broker_url),
        )
        kind = target.app.settings.loop
        with asyncio.Runner(loop_factory=lambda: new_event_loop(kind)) as runner:
            return runner.run(main())
    except ErrandsError as error:
        raise click.ClickException(str(error)) from None
    finally:
        restore_signals()


def warn_unused_queues(target: Target, queues: Sequence[str]) -> None:
    """Log a warning naming the queues no registered task uses (often a typo or the wrong app),
    and the queues the tasks do use."""
    used = sorted({task.defaults.queue for task in target.app.registry.values()})
    unused = [queue for queue in queues if queue not in used]
    if unused:
        log.warning(
            "--queues %s: no task of %s uses %s (its tasks use %s); jobs reach %s only when "
            "sent with options(queue=...)",
            ",".join(queues),
            target.ref,
            ", ".join(repr(queue) for queue in unused),
            ", ".join(repr(queue) for queue in used) or "no queue: it registers no task",
            "it" if len(unused) == 1 else "them",
        )


async def serve(target: Target, options: dict[str, Any]) -> Worker:
    """Run the worker on this loop with SIGTERM and SIGINT asking it to stop."""
    worker = target.app.worker(**options)
    loop = asyncio.get_running_loop()
    on_signal = StopOnSignal(worker)
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    for signum in _EARLY:  # a stop asked for while the app was still loading
        on_signal(signum)
    flushing = loop.create_task(flush_logs_every())
    try:
        await worker.run()
    finally:
        flushing.cancel()
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        # Closed here, on its own loop, so the exit-time close has nothing left to do.
        await target.app.close_async()
    return worker


class StopOnSignal:
    """A loop signal handler: the first signal drains the worker, the next skips the grace."""

    def __init__(self, worker: Worker) -> None:
        self.worker, self.received = worker, 0

    def __call__(self, signum: signal.Signals) -> None:
        """Ask the worker to stop (the Worker itself treats a second request as forced)."""
        self.received += 1
        if self.received == 1:
            log.info("%s: stopping; running jobs may finish within the grace", signum.name)
        else:
            log.warning("%s again: releasing running jobs now", signum.name)
        self.worker.request_stop()


_EARLY: list[signal.Signals] = []


_PREVIOUS: dict[signal.Signals, Any] = {}


def _remember(signum: int, frame: object) -> None:
    _EARLY.append(signal.Signals(signum))


def catch_early_signals() -> None:
    """Until the loop's handlers are in place, remember SIGTERM/SIGINT instead of dying: a
    supervisor may stop a worker that is still importing its app."""
    for signum in STOP_SIGNALS:
        previous = signal.signal(signum, _remember)
        if previous is not _remember:
            _PREVIOUS[signum] = previous


def restore_signals() -> None:
    """Put back the handlers catch_early_signals replaced."""
    for signum, previous in _PREVIOUS.items():
        signal.signal(signum, previous)
    _PREVIOUS.clear()
    _EARLY.clear()


def restart() -> NoReturn:
    """Replace this process with a fresh `python -m errands` run with the same arguments."""
    args = [sys.executable, "-m", "errands", *sys.argv[1:]]
    log.warning("restarting the worker: %s", " ".join(args))
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execv(sys.executable, args)


def masked(url: str) -> str:
    """The URL with any password replaced by ***, for logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
