"""Tagged JSON: extra types come back as themselves, plain JSON stays plain, the rest is refused."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from decimal import Decimal
from typing import Any

import pytest

from errands import codec

ROUND_TRIPS: list[Any] = [
    dt.datetime(2030, 3, 31, 1, 30, 15, 123456, tzinfo=dt.UTC),
    dt.datetime(2030, 3, 31, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30))),
    dt.datetime(2030, 3, 31, 1, 30, 15, 1),  # naive stays naive
    dt.date(1999, 12, 31),
    dt.time(23, 59, 59, 999999),
    dt.time(8, 0, tzinfo=dt.UTC),
    dt.timedelta(days=2, seconds=3, microseconds=4),
    dt.timedelta(seconds=-90),
    dt.timedelta(0),
    uuid.UUID("0190f6a1-2b3c-7d4e-8f90-a1b2c3d4e5f6"),
    Decimal("12345678901234567890.000000000000000001"),
    Decimal("-0.00"),
    b"\x00\xffbinary\n",
    b"",
    (1, "two", 3.0),
    (),
    {1, 2, 3},
    set(),
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=lambda v: type(v).__name__ + ":" + repr(v))
def test_a_tagged_value_comes_back_equal_and_of_the_same_type(value: Any) -> None:
    back = codec.loads(codec.dumps(value))

    assert back == value
    assert type(back) is type(value)


def test_a_naive_datetime_comes_back_naive_and_an_aware_one_keeps_its_offset() -> None:
    naive = dt.datetime(2030, 1, 1, 12, 0)
    aware = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))

    naive_back, aware_back = codec.loads(codec.dumps([naive, aware]))

    assert naive_back.tzinfo is None
    assert aware_back.utcoffset() == dt.timedelta(hours=2)


def test_bytearray_and_memoryview_come_back_as_bytes() -> None:
    assert codec.loads(codec.dumps([bytearray(b"ab"), memoryview(b"cd")])) == [b"ab", b"cd"]


def test_a_frozenset_comes_back_as_a_set_with_the_same_members() -> None:
    assert codec.loads(codec.dumps(frozenset({"a", "b"}))) == {"a", "b"}


def test_tagged_values_nest_inside_lists_dicts_tuples_and_sets() -> None:
    value = {
        "when": [dt.date(2030, 1, 1), {"id": uuid.UUID(int=7)}],
        "pair": (Decimal("1.5"), (b"x", dt.timedelta(minutes=1))),
        "tags": {("a", 1), ("b", 2)},
    }

    assert codec.loads(codec.dumps(value)) == value


def test_plain_json_is_sent_as_the_same_json() -> None:
    value = {"s": "é", "i": -3, "f": 2.5, "b": True, "n": None, "l": [1, [2, {"k": "v"}]]}

    assert json.loads(codec.dumps(value)) == value
    assert codec.loads(codec.dumps(value)) == value


def test_a_tagged_value_travels_as_a_tag_and_a_json_value() -> None:
    assert json.loads(codec.dumps(uuid.UUID(int=1))) == {
        "__errands__": "uuid",
        "v": "00000000-0000-0000-0000-000000000001",
    }


def test_an_unknown_tag_is_left_as_the_plain_dict_it_is() -> None:
    data = b'{"__errands__": "frobnicator", "v": 1}'

    assert codec.loads(data) == {"__errands__": "frobnicator", "v": 1}


def test_an_object_is_refused_with_a_type_error_naming_its_type() -> None:
    class Invoice:
        pass

    with pytest.raises(TypeError, match="Invoice"):
        codec.dumps({"invoice": [Invoice()]})


def test_a_dict_with_a_non_string_key_is_refused_naming_the_key() -> None:
    with pytest.raises(TypeError, match=r"dict keys must be str.*42"):
        codec.dumps({"ok": {42: "answer"}})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_float_is_never_silently_turned_into_none(value: float) -> None:
    try:
        back = codec.loads(codec.dumps([value]))
    except (TypeError, ValueError):
        return  # refusing it at enqueue is a fine answer too
    assert isinstance(back[0], float)
    assert back[0] == value or (math.isnan(value) and math.isnan(back[0]))


def test_a_long_timedelta_keeps_its_microseconds() -> None:
    value = dt.timedelta(days=100_000, microseconds=1)

    assert codec.loads(codec.dumps(value)) == value


def test_a_users_dict_shaped_like_a_tag_comes_back_as_that_dict() -> None:
    value = {"__errands__": "bytes", "v": "aGk="}

    assert codec.loads(codec.dumps(value)) == value
