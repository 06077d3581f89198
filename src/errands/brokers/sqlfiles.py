"""Named SQL: loads `-- name:` queries and numbered migrations from .sql files in a package.

It parses files and splits statements; running them is left to each SQL broker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
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

    `executescript` would commit first. A statement ends at a `;` outside strings, quoted
    identifiers, comments and dollar-quoted bodies (`$$ ... $$`, `$tag$ ... $tag$`), or, in a
    SQLite trigger, at the `END;` closing its `BEGIN` block: one set of rules for SQLite and
    PostgreSQL. Comments before a statement stay with it; a chunk of comments alone is dropped;
    code after the last `;` is an error.
    """
    statements: list[str] = []
    start = 0
    chunk = _Chunk()
    for token in _TOKEN.finditer(sql):
        kind = token.lastgroup
        if kind == "semicolon":
            if chunk.ends_at_semicolon():
                if chunk.has_code:
                    statements.append(sql[start : token.end()].strip())
                start, chunk = token.end(), _Chunk()
        elif kind not in ("space", "comment"):
            chunk.take(token.group(), word=kind == "word")
    if chunk.has_code:
        raise ValueError(
            f"incomplete SQL statement at the end of a script: {sql[start:].strip()!r}"
        )
    return statements


# Tokens follow one another with no gap: anything else is one `other` character. An
# unterminated string, identifier, comment or dollar quote runs to the end of the script, where
# code with no `;` after it is an error. A doubled quote ('it''s') reads as two strings side by
# side, which end where the one string does. A `$` inside a word is part of it (PostgreSQL
# identifiers may hold one), so only a `$` that starts a token opens a dollar quote, and `$1`
# never does: a tag cannot start with a digit.
_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<string>'[^']*(?:'|\Z))
    | (?P<identifier>"[^"]*(?:"|\Z))
    | (?P<dollar>(?P<tag>\$(?:[^\W\d]\w*)?\$).*?(?:(?P=tag)|\Z))
    | (?P<word>\w[\w$]*)
    | (?P<semicolon>;)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_TRIGGER = (
    ("CREATE", "TRIGGER"),
    ("CREATE", "TEMP", "TRIGGER"),
    ("CREATE", "TEMPORARY", "TRIGGER"),
)


@dataclass(slots=True)
class _Chunk:
    """What decides where the statement being read ends.

    A SQLite trigger's body is `BEGIN stmt; stmt; END;`. Inside it a `;` ends an inner
    statement, and the trigger ends at the `;` after an `END` that is the first word of an inner
    statement; an `END` closing a CASE comes later in its statement. SQLite's own
    `complete_statement` reads triggers so. A trigger with no BEGIN (PostgreSQL's) ends at its
    first `;`.
    """

    has_code: bool = False
    lead: list[str] = field(default_factory=list)  # the first three code tokens, upper-cased
    in_body: bool = False
    after_semicolon: bool = False  # in a body: no code yet since an inner statement's `;`
    at_end: bool = False  # in a body: the last code token was an inner statement's first END

    def take(self, text: str, *, word: bool) -> None:
        """Read one code token: anything but space, a comment or a `;`."""
        self.has_code = True
        if len(self.lead) < 3:
            self.lead.append(text.upper())
        keyword = text.upper() if word else ""
        if self.in_body:
            self.at_end = self.after_semicolon and keyword == "END"
            self.after_semicolon = False
        elif keyword == "BEGIN" and any(tuple(self.lead[: len(t)]) == t for t in _TRIGGER):
            self.in_body = True

    def ends_at_semicolon(self) -> bool:
        """Read a `;`: True if it ends the statement, False if it ends one inside a trigger."""
        if not self.in_body or self.at_end:
            return True
        self.after_semicolon = True
        return False
