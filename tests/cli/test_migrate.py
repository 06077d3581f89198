"""`errands migrate URL`: the schema a producer in another language writes to, with no TARGET."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from errands.cli.main import main
from tests.brokers.registry import REGISTRY
from tests.conftest import require_service

MIGRATIONS = sorted(
    (Path(__file__).parents[2] / "src/errands/brokers/sqlite/migrations").glob("[0-9]*_*.sql")
)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory, so relative URLs land in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path.resolve()


def migrate(runner: CliRunner, url: str) -> Result:
    return runner.invoke(main, ["migrate", url])


def applied(database: Path) -> list[tuple[int, str, int]]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return list(connection.execute("SELECT version, name, applied_at FROM migrations"))


def test_creates_the_file_and_every_table_a_producer_needs(runner: CliRunner, here: Path) -> None:
    result = migrate(runner, "sqlite:///errands.db")

    assert result.exit_code == 0, result.output
    database = here / "errands.db"
    first_line = result.stdout.splitlines()[0]
    assert first_line == f"created the schema at {database} (migration {MIGRATIONS[-1].stem})"
    with contextlib.closing(sqlite3.connect(database)) as connection:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    assert {"jobs", "queues", "workers", "migrations"} <= tables
    assert [version for version, _, _ in applied(database)] == list(range(1, len(MIGRATIONS) + 1))
    assert mode == "wal"


def test_prints_the_wake_up_directory_the_protocol_doc_derives(
    runner: CliRunner, here: Path
) -> None:
    result = migrate(runner, "sqlite:///errands.db")

    # docs/protocol.md: <temp dir>/errands-wake-<first 16 hex digits of SHA-1 of the real path>
    digest = hashlib.sha1(os.fsencode(os.path.realpath(here / "errands.db"))).hexdigest()[:16]
    expected = Path(tempfile.gettempdir()) / f"errands-wake-{digest}"
    assert result.stdout.splitlines()[1] == f"workers' wake-up sockets: {expected}"


def test_a_second_run_finds_the_schema_up_to_date_and_applies_nothing(
    runner: CliRunner, here: Path
) -> None:
    assert migrate(runner, "sqlite:///errands.db").exit_code == 0
    before = applied(here / "errands.db")

    result = migrate(runner, f"sqlite:///{here / 'errands.db'}")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"schema up to date at {here / 'errands.db'} (migration ")
    assert applied(here / "errands.db") == before


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://db/jobs", "no broker for URL 'mysql://db/jobs' (schemes known: amqp"),
        ("sqlite://host/jobs.db", "a sqlite URL names no host"),
        ("sqlite:///", "no database file in 'sqlite:///'"),
        ("sqlite:///jobs.db?synchronous=SOMETIMES", "synchronous='SOMETIMES' is not one of"),
        ("sqlite:///jobs.db?cache=big", "unknown or bad option cache='big'"),
        ("memory://", "'memory://' is a memory broker"),
        ("sqlite:///missing/jobs.db", "missing does not exist"),
    ],
)
def test_a_bad_url_exits_2_naming_the_problem_and_creates_nothing(
    runner: CliRunner, here: Path, url: str, problem: str
) -> None:
    result = migrate(runner, url)

    assert result.exit_code == 2, result.output
    assert problem in result.stderr
    assert list(here.iterdir()) == []


def test_a_file_that_is_not_a_database_exits_1_and_is_left_alone(
    runner: CliRunner, here: Path
) -> None:
    (here / "notes.db").write_text("not SQLite\n")

    result = migrate(runner, "sqlite:///notes.db")

    assert result.exit_code == 1
    assert f"cannot migrate {here / 'notes.db'}: file is not a database" in result.stderr
    assert (here / "notes.db").read_text() == "not SQLite\n"


@pytest.mark.parametrize("name", ["postgres", "redis"])
def test_a_server_broker_is_migrated_and_a_second_run_finds_it_up_to_date(
    runner: CliRunner, tmp_path: Path, name: str
) -> None:
    entry = REGISTRY[name]
    why = entry.unavailable()
    require_service(name, why is None, why or "")
    url = entry.url(tmp_path)
    try:
        first, second = migrate(runner, url), migrate(runner, url)
    finally:
        entry.cleanup(url)

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert second.stdout.startswith("schema up to date at ")
    if name == "postgres":
        from errands.brokers.postgres.sql import MIGRATIONS

        last = MIGRATIONS[-1]
        assert f"(migration {last.version:04d}_{last.name})" in second.stdout


def test_a_server_that_cannot_be_reached_exits_1_naming_it(runner: CliRunner) -> None:
    result = migrate(runner, "redis://127.0.0.1:1/0?socket_connect_timeout=1")

    assert result.exit_code == 1
    assert "cannot migrate redis://127.0.0.1:1/0" in result.stderr
