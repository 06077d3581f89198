"""Splitting SQL scripts into statements: one set of rules for SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from errands.brokers.sqlfiles import load_migrations, split_statements


def test_a_semicolon_in_a_string_or_a_quoted_identifier_does_not_end_the_statement() -> None:
    script = """
        INSERT INTO "odd;name" VALUES ('a;b', 'it''s; fine');
        SELECT ';';
    """
    assert split_statements(script) == [
        """INSERT INTO "odd;name" VALUES ('a;b', 'it''s; fine');""",
        "SELECT ';';",
    ]


def test_a_semicolon_in_a_comment_does_not_end_the_statement() -> None:
    script = "SELECT 1 -- one; two\n  /* three;\n four; */ + 2;\nSELECT 3;"
    assert split_statements(script) == [
        "SELECT 1 -- one; two\n  /* three;\n four; */ + 2;",
        "SELECT 3;",
    ]


def test_comments_before_a_statement_stay_with_it() -> None:
    script = "-- why the table exists\n/* and how */\nCREATE TABLE a (x);\n"
    assert split_statements(script) == [
        "-- why the table exists\n/* and how */\nCREATE TABLE a (x);"
    ]


def test_a_postgresql_function_keeps_its_dollar_quoted_body_whole() -> None:
    function = """CREATE FUNCTION errands_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('errands', NEW.queue);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;"""
    trigger = """CREATE TRIGGER jobs_notify AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION errands_notify();"""
    # A PostgreSQL trigger has no BEGIN block: it ends at its first `;`.
    assert split_statements(f"{function}\n\n{trigger}\nSELECT 1;") == [
        function,
        trigger,
        "SELECT 1;",
    ]


def test_a_tagged_dollar_quote_ends_only_at_its_own_tag() -> None:
    function = """CREATE FUNCTION f(n int) RETURNS text AS $fn$
DECLARE
    body text := $$ a; b $$;  -- an inner $$ quote and a $1-style reference: $1;
BEGIN
    RETURN body || 'x;y' || n;
END;
$fn$ LANGUAGE plpgsql;"""
    assert split_statements(f"{function}\nSELECT f(1);") == [function, "SELECT f(1);"]


def test_a_dollar_inside_a_name_opens_no_quote() -> None:
    assert split_statements("SELECT a$$b, $1 FROM t;\nSELECT 2;") == [
        "SELECT a$$b, $1 FROM t;",
        "SELECT 2;",
    ]


TRIGGER = """CREATE TRIGGER jobs_done AFTER UPDATE OF state ON jobs
WHEN NEW.state = 'completed'
BEGIN
    UPDATE stats SET done = done + 1;  -- a `;` inside the body
    UPDATE stats SET last = CASE WHEN NEW.id > last THEN NEW.id ELSE last END;
    end;
"""


def test_a_sqlite_trigger_keeps_its_body_whole_and_sqlite_runs_it() -> None:
    script = f"""
CREATE TABLE jobs (id INTEGER, state TEXT);
CREATE TABLE stats (done INTEGER, last INTEGER);
INSERT INTO stats VALUES (0, 0);
{TRIGGER}
CREATE TEMP TRIGGER jobs_seen AFTER INSERT ON jobs BEGIN SELECT 1; END;
INSERT INTO jobs VALUES (7, 'running');
UPDATE jobs SET state = 'completed';
"""
    statements = split_statements(script)
    assert statements[3] == TRIGGER.strip()
    assert (
        statements[4] == "CREATE TEMP TRIGGER jobs_seen AFTER INSERT ON jobs BEGIN SELECT 1; END;"
    )
    assert len(statements) == 7
    connection = sqlite3.connect(":memory:")
    try:
        for statement in statements:
            connection.execute(statement)  # one statement each, or sqlite3 refuses it
        assert connection.execute("SELECT done, last FROM stats").fetchone() == (1, 7)
    finally:
        connection.close()


def test_chunks_of_comments_or_blanks_alone_are_dropped() -> None:
    script = "-- a header\n\n/* a; block */\n;\nSELECT 1;\n-- a trailer; with a semicolon\n\n"
    assert split_statements(script) == ["SELECT 1;"]
    assert split_statements("") == []
    assert split_statements("  -- only this\n/* and this */  ") == []


@pytest.mark.parametrize(
    "script",
    [
        "CREATE TABLE a (x",
        "SELECT 1;\nSELECT 2 -- no semicolon;",
        "SELECT 'never closed;",
        "SELECT $$ never closed; ",
        "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; ",
    ],
)
def test_code_after_the_last_statement_end_is_an_error(script: str) -> None:
    with pytest.raises(ValueError, match="incomplete SQL statement"):
        split_statements(script)


def split_like_sqlite(sql: str) -> list[str]:
    """How statements were split before: line by line until sqlite3 calls the text complete,
    dropping chunks of `--` comments alone."""
    statements: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            lines = [part.strip() for part in pending.splitlines()]
            if any(part and not part.startswith("--") for part in lines):
                statements.append(pending.strip())
            pending = ""
    return statements


def test_the_sqlite_brokers_migrations_split_as_sqlite_splits_them() -> None:
    migrations = load_migrations("errands.brokers.sqlite")
    assert migrations
    for migration in migrations:
        assert migration.statements() == split_like_sqlite(migration.sql), migration.name


# Statements built from pieces that each hide a `;` (or a quote, or a `$`) from the splitter.
TRICKY = st.text(alphabet=";'\"-/*$\n xE", max_size=12)
PIECES = st.one_of(
    st.sampled_from(["x", "1", "(", ")", ",", "+", "END", "BEGIN", "$1", "a$b"]),
    TRICKY.map(lambda s: "'" + s.replace("'", "''") + "'"),
    TRICKY.map(lambda s: '"' + s.replace('"', '""') + '"'),
    TRICKY.filter(lambda s: "\n" not in s).map(lambda s: f"--{s}\n"),
    TRICKY.filter(lambda s: "*/" not in s).map(lambda s: f"/*{s}*/"),
    st.tuples(st.sampled_from(["$$", "$fn$", "$_x1$"]), TRICKY)
    .filter(lambda tag_body: (tag_body[1] + tag_body[0]).find(tag_body[0]) == len(tag_body[1]))
    .map(lambda tag_body: tag_body[0] + tag_body[1] + tag_body[0]),
)
STATEMENTS = st.lists(
    st.lists(PIECES, max_size=8).map(lambda pieces: " ".join(["SELECT", *pieces]) + ";"),
    max_size=5,
)


@given(STATEMENTS, st.sampled_from(["\n", " ", "\n\n  "]))
def test_statements_joined_into_a_script_split_back_into_themselves(
    statements: list[str], between: str
) -> None:
    assert split_statements(between.join(statements)) == statements
