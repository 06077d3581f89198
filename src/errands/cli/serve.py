"""`errands serve`: the HTTP API of a TARGET (docs/http.md), on uvicorn, until SIGINT/SIGTERM."""

from __future__ import annotations

from datetime import timedelta

import click

from errands.cli.logs import configure_logging

from .target import Target, target_argument
from .worker import log_level_option


@click.command("serve")
@target_argument
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    "tokens",
    multiple=True,
    help="A bearer token clients must send (repeatable; ERRANDS_API_TOKENS adds more, "
    "comma-separated). Required unless --host is a loopback address.",
)
@click.option(
    "--max-body",
    default=1 << 20,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request body in bytes (413 beyond).",
)
@click.option(
    "--max-wait",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Longest long poll in seconds (waiting for a result or a job to claim).",
)
@click.option(
    "--maintenance/--no-maintenance",
    default=True,
    show_default=True,
    help="Rescue the jobs of lapsed leases (pull clients that died) and promote due jobs.",
)
@log_level_option
def serve_command(
    target: Target,
    host: str,
    port: int,
    tokens: tuple[str, ...],
    max_body: int,
    max_wait: float,
    maintenance: bool,
    log_level: str,
) -> None:
    """Serve the HTTP API of TARGET ("module:app", or ERRANDS_APP) under /api/v1."""
    try:
        from errands.web.config import WebConfig
        from errands.web.server import Unprotected, serve
    except ImportError as error:
        raise click.ClickException(
            f"errands serve needs the web extra ({error.name} is missing): "
            "pip install 'errands[web]'"
        ) from None
    configure_logging(log_level)
    config = WebConfig(
        max_body_bytes=max_body,
        max_wait=timedelta(seconds=max_wait),
        maintenance=maintenance,
    )
    try:
        serve(
            target.app,
            host=host,
            port=port,
            tokens=tokens,
            config=config,
            log_level=log_level.lower(),
        )
    except Unprotected as error:
        raise click.UsageError(str(error)) from None
