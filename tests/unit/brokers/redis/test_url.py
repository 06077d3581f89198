"""Redis broker URLs: errands' options split from redis-py's, bad ones named in the error."""

from __future__ import annotations

import re

import pytest

from errands.brokers.redis.url import parse_url


def test_a_plain_url_gets_database_0_and_the_default_prefix() -> None:
    parsed = parse_url("redis://127.0.0.1:6379")

    assert parsed.connect == "redis://127.0.0.1:6379/0"
    assert (parsed.prefix, parsed.cluster) == ("errands", False)


def test_prefix_and_cluster_are_errands_options_and_the_rest_goes_to_redis_py() -> None:
    parsed = parse_url("rediss://:secret@cache:6380/0?prefix=shop&cluster=yes&socket_timeout=2")

    assert (parsed.prefix, parsed.cluster) == ("shop", True)
    assert parsed.connect == "rediss://:secret@cache:6380/0?socket_timeout=2"


def test_the_location_never_shows_the_password() -> None:
    parsed = parse_url("redis://user:hunter2@cache:6379/3?prefix=shop")

    assert "hunter2" not in parsed.location
    assert parsed.location == "redis://cache:6379/3 (prefix shop)"


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("redis://h:6379/0?colour=blue", "'colour'"),
        ("redis://h:6379/zero", "'zero'"),
        ("redis://h:6379/0?cluster=maybe", "cluster='maybe'"),
        ("redis://h:6379/2?cluster=1", "database 0"),
        ("http://h:6379/0", "not a Redis URL"),
        ("redis:///0", "no host"),
    ],
)
def test_a_bad_url_is_refused_naming_what_is_wrong(url: str, named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        parse_url(url)
