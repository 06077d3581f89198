"""`errands migrate URL`: create or upgrade a broker's schema, with no TARGET to import.

A producer in another language (docs/protocol.md) writes jobs straight into the database, so it
needs the tables before any worker or Python producer has opened the file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING

import click

from errands.brokers import from_url
from errands.errors import ErrandsError

if TYPE_CHECKING:
    from errands.brokers.sqlite.broker import SQLiteBroker


@click.command("migrate")
@click.argument("url")
def migrate_command(url: str) -> None:
    """Create or upgrade the schema of the broker at URL, e.g. sqlite:///errands.db.

    Safe to repeat and to run while workers use the file. A bad URL exits 2; a file that
    cannot be opened or written exits 1.
    """
    # Imported here, as from_url does, so the other commands never load the SQLite broker.
    from errands.brokers.sqlite.sql import MIGRATIONS
    from errands.brokers.sqlite.wakeup import wake_directory

    broker = _sqlite_broker(url)
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


def _sqlite_broker(url: str) -> SQLiteBroker:
    from errands.brokers.sqlite.broker import SQLiteBroker

    try:
        broker = from_url(url)
    except ValueError as error:  # an unknown scheme, or a sqlite URL that does not parse
        raise click.BadParameter(str(error), param_hint="URL") from None
    if not isinstance(broker, SQLiteBroker):
        raise click.BadParameter(
            f"{url!r} is a {broker.capabilities.name} broker, which lives inside one Python "
            "process and has no schema; only a sqlite:/// database can be shared",
            param_hint="URL",
        )
    return broker


async def _migrate(broker: SQLiteBroker) -> None:
    try:
        await broker.open()  # creates the file and applies every pending migration
    finally:
        await broker.close()
