"""Named SQL: loads `-- name:` queries and numbered migrations from .sql files in a package.

It parses files and splits statements; running them is left to each SQL broker.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*$")
_MIGRATION = re.compile(r"^(?P<version>\d{4})_(?P<name>[A-Za-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change, e.g. `0001_initial.sql` is version 1 named `initial`."""

    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The migration's statements, one by one, for running inside a transaction."""
        return split_statements(self.sql)


def parse_queries(text: str, *, source: str = "<string>") -> dict[str, str]:
    """Map each `-- name: x` header to the SQL below it, up to the next header.

    Comments stay in the SQL (SQLite ignores them); a repeated name is an error, so two
    queries can never shadow each other.
    """
    queries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _NAME.match(line.strip())
        if header is None:
            if current is not None:
                current.append(line)
            continue
        name = header["name"]
        if name in queries:
            raise ValueError(f"{source}:{number}: query {name!r} is defined twice")
        current = queries[name] = []
    return {name: "\n".join(lines).strip() for name, lines in queries.items()}


def load_queries(package: str, filename: str = "queries.sql") -> dict[str, str]:
    """The named queries of `filename` inside `package` (works from a wheel or a zip)."""
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    return parse_queries(text, source=f"{package}/{filename}")


def load_migrations(package: str, directory: str = "migrations") -> list[Migration]:
    """Every `NNNN_name.sql` file in `directory` of `package`, by version; a gap or a repeat
    is an error. The directory needs no __init__.py (it is data, not a package)."""
    found: list[Migration] = []
    for entry in resources.files(package).joinpath(directory).iterdir():
        match = _MIGRATION.match(entry.name)
        if match is None:
            continue
        sql = entry.read_text(encoding="utf-8")
        found.append(Migration(int(match["version"]), match["name"], sql))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if versions != list(range(1, len(found) + 1)):
        raise ValueError(
            f"migrations in {package} must be numbered 1, 2, ... with no gap: {versions}"
        )
    return found


def split_statements(sql: str) -> list[str]:
    """Split a script into complete statements, so each can run inside one transaction.

    `executescript` would commit first; `sqlite3.complete_statement` knows where a statement
    ends, semicolons inside strings and trigger bodies included.
    """
    statements: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statement = pending.strip()
            if _has_code(statement):
                statements.append(statement)
            pending = ""
    if _has_code(pending):
        raise ValueError(f"incomplete SQL statement at the end of a script: {pending.strip()!r}")
    return statements


def _has_code(text: str) -> bool:
    # A chunk of comments alone is "complete" to SQLite but nothing to run.
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())
