"""`errands migrate URL`: create or upgrade a broker's schema, with no TARGET to import.

A producer in another language (docs/protocol.md) writes jobs straight into the database, so it
needs the tables before any worker or Python producer has opened the file; a deploy may want
the PostgreSQL schema in place before the new workers start.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING

import click

from errands.brokers import from_url
from errands.brokers.contract import Broker
from errands.errors import ErrandsError

if TYPE_CHECKING:
    from errands.brokers.sqlite.broker import SQLiteBroker


@click.command("migrate")
@click.argument("url")
def migrate_command(url: str) -> None:
    """Create or upgrade the schema of the broker at URL, e.g. sqlite:///errands.db or
    postgresql://host/db?schema=shop (Redis: records its key layout's version).

    Safe to repeat and to run while workers use the broker. A bad URL exits 2; storage that
    cannot be reached, opened or written exits 1.
    """
    from errands.brokers.sqlite.broker import SQLiteBroker

    broker = _broker(url)
    if isinstance(broker, SQLiteBroker):
        _migrate_sqlite(broker)
    else:
        _migrate_server(broker)


def _migrate_server(broker: Broker) -> None:
    try:
        asyncio.run(_migrate(broker))
    except ErrandsError as error:
        raise click.ClickException(f"cannot migrate {broker.location}: {error}") from None
    latest = ""
    if broker.capabilities.name == "postgres":
        from errands.brokers.postgres.sql import MIGRATIONS as PG_MIGRATIONS

        last = PG_MIGRATIONS[-1]
        latest = f" (migration {last.version:04d}_{last.name})"
    click.echo(f"schema up to date at {broker.location}{latest}")


def _migrate_sqlite(broker: SQLiteBroker) -> None:
    # Imported here, as from_url does, so the other commands never load the SQLite broker.
    from errands.brokers.sqlite.sql import MIGRATIONS
    from errands.brokers.sqlite.wakeup import wake_directory

    path = broker.path.resolve()
    if not path.parent.is_dir():
        raise click.BadParameter(
            f"directory {path.parent} does not exist (the database file is created, "
            "its directory is not)",
            param_hint="URL",
        )
    fresh = not path.exists() or path.stat().st_size == 0
    try:
        asyncio.run(_migrate(broker))
    except (ErrandsError, sqlite3.Error) as error:
        raise click.ClickException(f"cannot migrate {path}: {error}") from None
    latest = MIGRATIONS[-1]
    done = "created the schema" if fresh else "schema up to date"
    click.echo(f"{done} at {path} (migration {latest.version:04d}_{latest.name})")
    click.echo(f"workers' wake-up sockets: {wake_directory(path)}")


def _broker(url: str) -> Broker:
    try:
        broker = from_url(url)
    except ValueError as error:  # an unknown scheme, or a URL that does not parse
        raise click.BadParameter(str(error), param_hint="URL") from None
    if not broker.capabilities.cross_process:
        raise click.BadParameter(
            f"{url!r} is a {broker.capabilities.name} broker, which lives inside one Python "
            "process and has no schema",
            param_hint="URL",
        )
    return broker


async def _migrate(broker: Broker) -> None:
    try:
        await broker.open()  # creates the storage and applies every pending migration
    finally:
        await broker.close()
