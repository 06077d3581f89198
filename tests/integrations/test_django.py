"""Django, configured in this process: the App that settings.ERRANDS names, enqueue on
`transaction.on_commit` (SQLite), and enqueue inside Django's own PostgreSQL transaction.

Django's settings can be configured once per process, so every database these tests use is
declared at once: "default" (SQLite in memory) and "shop" (the shared PostgreSQL, connected to
only by the tests that need it, which skip without it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.db import connections, transaction  # noqa: E402
from django.test import override_settings  # noqa: E402

import errands  # noqa: E402
from errands.brokers.postgres.url import parse_url  # noqa: E402
from errands.integrations.django import (  # noqa: E402
    database_url,
    enqueue_in_transaction,
    enqueue_on_commit,
    get_app,
)
from errands.testing import Jobs  # noqa: E402
from tests.brokers.registry import POSTGRES_URL, REGISTRY, fresh_storage  # noqa: E402
from tests.integrations import djangoshop  # noqa: E402


class Abandon(Exception):
    """The application's own failure after it enqueued, rolling its transaction back."""


def _configure() -> None:
    if settings.configured:
        if "shop" not in settings.DATABASES:
            pytest.skip("Django was configured by another test without the 'shop' database")
        return
    pg = psycopg.conninfo.conninfo_to_dict(POSTGRES_URL)
    settings.configure(
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            "shop": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": pg.get("dbname", ""),
                "USER": pg.get("user", ""),
                "PASSWORD": pg.get("password", ""),
                "HOST": pg.get("host", ""),
                "PORT": pg.get("port", ""),
            },
        },
        USE_TZ=True,
    )
    django.setup()


@pytest.fixture(autouse=True)
def configured() -> Iterator[None]:
    """Django configured once, and every connection this test opened closed after it."""
    _configure()
    yield
    connections.close_all()


@pytest.fixture
def orders() -> Iterator[None]:
    """An order table in the SQLite database."""
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE TABLE shop_orders (id integer PRIMARY KEY)")
    yield
    with connections["default"].cursor() as cursor:
        cursor.execute("DROP TABLE shop_orders")


def stored_orders(alias: str = "default") -> list[int]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT id FROM shop_orders ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def test_settings_name_the_users_app() -> None:
    with override_settings(ERRANDS={"APP": "tests.integrations.djangoshop:app"}):
        assert get_app() is djangoshop.app


def test_a_broker_url_gives_one_app_per_url(tmp_path: Path) -> None:
    first, second = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    with override_settings(ERRANDS={"BROKER_URL": first}):
        app = get_app()
        assert get_app() is app
        assert app.settings.broker_url == first
    with override_settings(ERRANDS={"BROKER_URL": second}):
        assert get_app() is not app


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (None, "must be a dict"),
        ({}, "exactly one of APP, BROKER_URL, DATABASE"),
        ({"APP": "x:app", "BROKER_URL": "memory://"}, "exactly one"),
        ({"BROKER": "memory://"}, "unknown keys"),
        ({"APP": "tests.integrations.nowhere:app"}, "no module named"),
        ({"DATABASE": "default"}, "not django.db.backends.postgresql"),
        ({"DATABASE": "other"}, "no database 'other'"),
    ],
)
def test_bad_settings_are_improperly_configured(config: object, message: str) -> None:
    with override_settings(ERRANDS=config), pytest.raises(ImproperlyConfigured, match=message):
        get_app()


def test_on_commit_enqueues_only_after_the_commit(app: errands.App, orders: None) -> None:
    send_receipt, jobs = app.get_task("shop.send_receipt"), Jobs(app)

    with transaction.atomic():
        connections["default"].cursor().execute("INSERT INTO shop_orders VALUES (1)")
        enqueue_on_commit(send_receipt.call(1))
        assert jobs.enqueued() == []  # not yet: the transaction may still roll back

    job = jobs.assert_enqueued(send_receipt, args=(1,))
    assert stored_orders() == [1]
    assert app.run_until_idle() == 1
    assert job.handle.result(timeout=5) == "receipt for order 1 sent"


def test_a_rollback_enqueues_nothing(app: errands.App, orders: None) -> None:
    send_receipt = app.get_task("shop.send_receipt")

    with contextlib.suppress(Abandon), transaction.atomic():
        connections["default"].cursor().execute("INSERT INTO shop_orders VALUES (2)")
        enqueue_on_commit(send_receipt.options(queue="mail").call(2))
        raise Abandon

    assert stored_orders() == []
    assert Jobs(app).enqueued() == []


def test_outside_a_transaction_the_job_is_enqueued_at_once(app: errands.App) -> None:
    send_receipt = app.get_task("shop.send_receipt")

    enqueue_on_commit(send_receipt.options(queue="mail").call(3))

    assert Jobs(app).assert_enqueued(send_receipt, args=(3,)).queue == "mail"


def test_on_commit_takes_a_call_not_a_task(app: errands.App) -> None:
    with pytest.raises(TypeError, match=r"task\.call"):
        enqueue_on_commit(app.get_task("shop.send_receipt"))  # type: ignore[arg-type]


def test_in_transaction_refuses_a_database_that_is_not_postgresql(app: errands.App) -> None:
    call = app.get_task("shop.send_receipt").call(4)
    with pytest.raises(TypeError, match="PostgreSQL database; 'default' is sqlite"):
        enqueue_in_transaction(call)


@pytest.fixture
def schema(tmp_path: Path) -> Iterator[str]:
    """A fresh errands schema on the shared PostgreSQL (skips, or fails under
    ERRANDS_REQUIRE_SERVICES=1, without the server), with an order table of the shop's."""
    with fresh_storage(REGISTRY["postgres"], tmp_path) as url:
        with connections["shop"].cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS shop_orders (id int PRIMARY KEY)")
            cursor.execute("TRUNCATE shop_orders")
        yield parse_url(url).schema
        with connections["shop"].cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS shop_orders")


def test_a_job_written_in_djangos_transaction_commits_and_rolls_back_with_it(
    schema: str,
) -> None:
    with override_settings(ERRANDS={"DATABASE": "shop", "SCHEMA": schema}):
        app = get_app()
    assert app.settings.broker_url == database_url("shop", schema)

    @app.task(name="orders.confirm")
    def confirm(order_id: int) -> str:
        return f"order {order_id} confirmed"

    with transaction.atomic(using="shop"):
        connections["shop"].cursor().execute("INSERT INTO shop_orders VALUES (8)")
        kept = enqueue_in_transaction(confirm.call(8), using="shop")
    with contextlib.suppress(Abandon), transaction.atomic(using="shop"):
        connections["shop"].cursor().execute("INSERT INTO shop_orders VALUES (9)")
        dropped = enqueue_in_transaction(confirm.call(9), using="shop")
        raise Abandon

    try:
        assert stored_orders("shop") == [8]
        assert [job.args for job in Jobs(app).enqueued()] == [(8,)]
        assert app.run_until_idle() == 1
        assert kept.result(timeout=5) == "order 8 confirmed"
        assert app.portal.call(app.call_broker, lambda b: b.get([dropped.id])) == []
    finally:
        app.close()
