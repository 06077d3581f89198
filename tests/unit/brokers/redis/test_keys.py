"""Key names: one hash tag per app, so every key of a script lies in one Cluster slot."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from errands.brokers.redis.keys import PER_NAME, SINGLE, Keys, lua_prelude


def test_every_key_of_an_app_is_in_the_slot_of_its_tag() -> None:
    keys = Keys("shop")
    names = [f"{keys.tag}:{suffix}" for suffix in SINGLE.values()]
    names += [f"{keys.tag}:{suffix}:some-name" for suffix in PER_NAME.values()]
    names.append(keys.job("0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee"))

    assert {key_slot(name.encode()) for name in names} == {key_slot(b"shop")}


def test_two_prefixes_never_share_a_key() -> None:
    assert Keys("a").job("1") != Keys("b").job("1")
    assert Keys("a").meta != Keys("b").meta


@pytest.mark.parametrize("prefix", ["", "a{b", "x}"])
def test_a_prefix_that_would_move_the_hash_tag_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        Keys(prefix)


def test_the_lua_prelude_defines_every_key_the_python_side_names() -> None:
    prelude = lua_prelude()

    for name in SINGLE:
        assert f"local K_{name} = P .. ':{SINGLE[name]}'" in prelude
    for name in PER_NAME:
        assert f"local function K_{name}(x)" in prelude
