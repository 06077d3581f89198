"""Transactional enqueue on PostgreSQL: `task.options(connection=conn).enqueue(...)` writes the
job inside the caller's transaction, so it exists (and runs) if and only if that commits; with
psycopg (sync and async), SQLAlchemy and Django, as docs/brokers/postgres.md shows them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import errands
from errands.brokers.postgres.url import parse_url
from tests.brokers.registry import REGISTRY
from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]


class Abandon(Exception):
    """The application's own failure after it enqueued, rolling its transaction back."""


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """A fresh schema on the shared PostgreSQL, migrated, dropped after the test."""
    entry = REGISTRY["postgres"]
    why = entry.unavailable()
    require_service("postgres", why is None, why or "")
    fresh = entry.url(tmp_path)
    subprocess.run([sys.executable, "-m", "errands", "migrate", fresh], check=True)
    yield fresh
    entry.cleanup(fresh)


@pytest.fixture
def app(url: str) -> Iterator[errands.App]:
    shop = errands.App(url)
    yield shop
    shop.close()


def make_task(app: errands.App) -> errands.Task[[int], str]:
    @app.task(name="orders.confirm")
    def confirm(order_id: int) -> str:
        return f"order {order_id} confirmed"

    return confirm


def stored(app: errands.App, job_id: str) -> list[str]:
    """The states of job `job_id` as the broker has it ([] when it does not exist)."""
    jobs = app.portal.call(app.call_broker, lambda b: b.get([job_id]))
    return [str(job.state) for job in jobs]


def orders(conninfo: str) -> list[int]:
    with psycopg.connect(conninfo) as check:
        return [row[0] for row in check.execute("SELECT id FROM shop_orders ORDER BY id")]


@pytest.fixture
def conninfo(url: str) -> Iterator[str]:
    """The same database for the caller's own connections, with an order table of its own."""
    info = parse_url(url).conninfo
    with psycopg.connect(info, autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS shop_orders (id int PRIMARY KEY)")
        setup.execute("TRUNCATE shop_orders")
    yield info
    with psycopg.connect(info, autocommit=True) as setup:
        setup.execute("DROP TABLE IF EXISTS shop_orders")


def test_a_committed_transaction_stores_the_job_and_a_worker_runs_it(
    app: errands.App, conninfo: str
) -> None:
    confirm = make_task(app)
    with psycopg.connect(conninfo) as conn, conn.transaction():
        conn.execute("INSERT INTO shop_orders VALUES (1)")
        job = confirm.options(connection=conn).enqueue(1)
        path = conn.execute("SHOW search_path").fetchone()

    assert path is not None
    assert "test-" not in path[0]  # the caller's own search_path, untouched
    assert orders(conninfo) == [1]
    assert stored(app, job.id) == ["available"]
    assert app.run_until_idle() == 1
    assert job.result() == "order 1 confirmed"


def test_a_rolled_back_transaction_leaves_no_job(app: errands.App, conninfo: str) -> None:
    confirm = make_task(app)
    with psycopg.connect(conninfo) as conn:
        with contextlib.suppress(Abandon), conn.transaction():
            conn.execute("INSERT INTO shop_orders VALUES (2)")
            job = confirm.options(connection=conn).enqueue(2)
            raise Abandon  # the application fails after enqueueing
        assert orders(conninfo) == []

    assert stored(app, job.id) == []
    assert app.run_until_idle() == 0


async def test_an_async_connection_commits_or_rolls_back_the_job_with_its_transaction(
    app: errands.App, conninfo: str
) -> None:
    confirm = make_task(app)
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        async with conn.transaction():
            kept = await confirm.options(connection=conn).enqueue_async(3)
        with contextlib.suppress(Abandon):
            async with conn.transaction():
                dropped = await confirm.options(connection=conn).enqueue_async(4)
                raise Abandon

    jobs = await app.call_broker(lambda b: b.get([kept.id, dropped.id]))
    assert [(job.id, str(job.state)) for job in jobs] == [(kept.id, "available")]


def test_a_broker_without_transactions_refuses_a_connection(tmp_path: Path, conninfo: str) -> None:
    sqlite_app = errands.App(f"sqlite:///{tmp_path / 'jobs.db'}")
    confirm = make_task(sqlite_app)
    try:
        with psycopg.connect(conninfo) as conn, pytest.raises(TypeError, match="sqlite"):
            confirm.options(connection=conn).enqueue(5)
    finally:
        sqlite_app.close()


def test_sqlalchemy_session_commit_and_rollback(app: errands.App, conninfo: str) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    confirm = make_task(app)
    engine = sqlalchemy.create_engine(conninfo.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:  # commits at the end of the block
            conn.execute(sqlalchemy.text("INSERT INTO shop_orders VALUES (6)"))
            kept = confirm.options(connection=conn.connection.driver_connection).enqueue(6)
        with contextlib.suppress(Abandon), engine.begin() as conn:
            conn.execute(sqlalchemy.text("INSERT INTO shop_orders VALUES (7)"))
            dropped = confirm.options(connection=conn.connection.driver_connection).enqueue(7)
            raise Abandon
    finally:
        engine.dispose()

    assert orders(conninfo) == [6]
    assert stored(app, kept.id) == ["available"]
    assert stored(app, dropped.id) == []


DJANGO = """
import sys
import django
from django.conf import settings

url, conninfo = sys.argv[1], sys.argv[2]
parts = __import__("psycopg").conninfo.conninfo_to_dict(conninfo)
settings.configure(DATABASES={"default": {
    "ENGINE": "django.db.backends.postgresql", "NAME": parts["dbname"],
    "USER": parts.get("user", ""), "HOST": parts.get("host", ""), "PORT": parts.get("port", ""),
}})
django.setup()
from django.db import connection, transaction

import errands
app = errands.App(url)

@app.task(name="orders.confirm")
def confirm(order_id: int) -> str:
    return f"order {order_id} confirmed"

with transaction.atomic():
    connection.cursor().execute("INSERT INTO shop_orders VALUES (8)")
    kept = confirm.options(connection=connection.connection).enqueue(8)
try:
    with transaction.atomic():
        connection.cursor().execute("INSERT INTO shop_orders VALUES (9)")
        dropped = confirm.options(connection=connection.connection).enqueue(9)
        raise KeyError("rolled back")
except KeyError:
    pass
print(kept.id, dropped.id)
app.close()
"""


def test_django_atomic_commit_and_rollback(app: errands.App, conninfo: str, url: str) -> None:
    pytest.importorskip("django")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DJANGO), url, conninfo],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    kept, dropped = done.stdout.split()
    assert orders(conninfo) == [8]
    assert stored(app, kept) == ["available"]
    assert stored(app, dropped) == []
