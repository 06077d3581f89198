"""PostgreSQL broker URLs: errands' options split from libpq's, bad ones named in the error,
and the names derived from the schema (channels, advisory lock keys)."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("psycopg")

from errands.brokers import from_url
from errands.brokers.postgres.broker import PostgresBroker
from errands.brokers.postgres.url import MAX_IDENTIFIER, channel, parse_url


def test_a_plain_url_gets_the_default_schema_pool_and_timeouts() -> None:
    parsed = parse_url("postgresql://app@db.internal:5433/jobs")

    assert parsed.conninfo == "postgresql://app@db.internal:5433/jobs"
    assert parsed.schema == "errands"
    assert (parsed.pool_max_size, parsed.pool_timeout) == (10, 5.0)
    assert parsed.defaults == {"connect_timeout": "5", "application_name": "errands"}


def test_schema_and_pool_options_are_errands_and_the_rest_goes_to_libpq() -> None:
    parsed = parse_url(
        "postgres://app:secret@db:5432/jobs?schema=shop&sslmode=require&pool_max_size=4"
        "&pool_timeout=2.5&connect_timeout=9"
    )

    assert parsed.schema == "shop"
    assert (parsed.pool_max_size, parsed.pool_timeout) == (4, 2.5)
    assert parsed.conninfo == "postgres://app:secret@db:5432/jobs?sslmode=require&connect_timeout=9"
    assert parsed.defaults == {"application_name": "errands"}  # the URL's timeout wins


def test_the_listener_gets_keepalives_unless_the_url_sets_its_own() -> None:
    assert parse_url("postgresql://h/db").listen_defaults["keepalives_idle"] == "30"
    tuned = parse_url("postgresql://h/db?keepalives_idle=7")

    assert "keepalives_idle" not in tuned.listen_defaults
    assert tuned.listen_defaults["keepalives_count"] == "3"


def test_a_percent_escaped_schema_is_decoded() -> None:
    assert parse_url("postgresql://h/db?schema=my%20app").schema == "my app"


def test_the_location_shows_host_port_database_and_schema_never_the_password() -> None:
    parsed = parse_url("postgresql://app:hunter2@db:6432/jobs?schema=shop")

    assert "hunter2" not in parsed.location
    assert parsed.location == "postgresql://db:6432/jobs (schema shop)"


def test_the_location_of_a_url_with_no_host_or_port_shows_the_defaults() -> None:
    assert (
        parse_url("postgresql:///jobs").location
        == "postgresql://localhost:5432/jobs (schema errands)"
    )


def test_the_location_lists_every_host_of_a_multi_host_url() -> None:
    parsed = parse_url("postgresql://a:5432,b:5433/jobs?target_session_attrs=read-write")

    assert parsed.location == "postgresql://a:5432,b:5433/jobs (schema errands)"


def test_a_broker_opened_by_url_names_its_location_without_the_password() -> None:
    broker = from_url("postgresql://app:hunter2@db/jobs?schema=shop")

    assert isinstance(broker, PostgresBroker)
    assert broker.location == "postgresql://db:5432/jobs (schema shop)"
    assert "hunter2" not in broker.location


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql://h/db?colour=blue", "unknown option 'colour'"),
        ("postgresql://h/db?schema=", "an empty schema"),
        ("postgresql://h/db?schema=pg_jobs", "pg_ are PostgreSQL's own"),
        (f"postgresql://h/db?schema={'s' * (MAX_IDENTIFIER + 1)}", "longer than PostgreSQL's"),
        ("postgresql://h/db?pool_max_size=0", "pool_max_size='0'"),
        ("postgresql://h/db?pool_max_size=few", "pool_max_size='few'"),
        ("postgresql://h/db?pool_timeout=-1", "pool_timeout='-1'"),
        ("postgresql://h:port/db", "bad port 'port'"),
        ("postgresql://h/db%zz", "bad PostgreSQL URL"),
        ("mysql://h/db", "not a PostgreSQL URL"),
    ],
)
def test_a_bad_url_is_refused_naming_what_is_wrong(url: str, named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        parse_url(url)


@pytest.mark.parametrize(
    "url",
    ["postgresql://app:hunter2@h/db?colour=blue", "postgresql://h/db?password=hunter2&colour=1"],
)
def test_an_error_about_a_url_never_shows_its_password(url: str) -> None:
    with pytest.raises(ValueError, match="unknown option") as caught:
        parse_url(url)

    assert "hunter2" not in str(caught.value)


def test_channels_are_named_after_the_schema_and_fit_an_identifier() -> None:
    parsed = parse_url("postgresql://h/db?schema=shop")
    long = "s" * MAX_IDENTIFIER

    assert (parsed.ready_channel, parsed.done_channel) == (
        "errands.shop.ready",
        "errands.shop.done",
    )
    assert len(channel(long, "ready").encode()) <= MAX_IDENTIFIER
    assert channel(long, "ready") != channel(long[:-1] + "t", "ready")


def test_lock_keys_are_64_bit_and_differ_by_schema_and_purpose() -> None:
    shop, mail = (
        parse_url("postgresql://h/db?schema=shop"),
        parse_url("postgresql://h/db?schema=mail"),
    )
    keys = {shop.lock_key("migrate"), shop.lock_key("reclaim"), mail.lock_key("migrate")}

    assert len(keys) == 3
    assert all(-(2**63) <= key < 2**63 for key in keys)
    assert shop.lock_key("migrate") == parse_url("postgres://other/db?schema=shop").lock_key(
        "migrate"
    )
