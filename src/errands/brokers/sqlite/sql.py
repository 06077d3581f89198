"""The SQLite broker's SQL, loaded once from queries.sql and migrations/, and the one helper
that turns a list into the JSON parameter its statements read with json_each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from errands.brokers.sqlfiles import load_migrations, load_queries

Q: Final = load_queries("errands.brokers.sqlite")
MIGRATIONS: Final = load_migrations("errands.brokers.sqlite")
_json = msgspec.json.Encoder()


def as_json(values: Sequence[str] | Sequence[Sequence[str]]) -> str:
    """A list parameter, read in SQL with json_each."""
    return json_text(list(values))


def json_text(value: object) -> str:
    """Any JSON-able parameter as text, read in SQL with json_each and json_extract."""
    return _json.encode(value).decode()
