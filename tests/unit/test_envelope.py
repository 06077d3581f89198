"""The wire envelope: what encodes decodes back; anything else is MalformedMessage with a reason."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from errands import envelope
from errands.envelope import MAX_DEPTH, MAX_PAYLOAD_BYTES, VERSION, Envelope
from errands.errors import MalformedMessage

HEAD = b'{"v":1,"id":"0190f6a1-2b3c-7d4e-8f90-a1b2c3d4e5f6","task":"shop.send_receipt"'


def full_envelope() -> Envelope:
    return Envelope(
        v=VERSION,
        id="0190f6a1-2b3c-7d4e-8f90-a1b2c3d4e5f6",
        task="shop.send_receipt",
        queue="mail",
        priority=5,
        args=[42, {"__errands__": "uuid", "v": "00000000-0000-0000-0000-000000000001"}],
        kwargs={"urgent": True},
        enqueued_at=datetime(2030, 1, 1, 12, 0, tzinfo=UTC),
        scheduled_at=datetime(2030, 1, 1, 12, 5, tzinfo=UTC),
        max_attempts=5,
        max_crashes=2,
        timeout_ms=30_000,
        result_ttl_ms=86_400_000,
        idempotency_key="order-42",
        depends_on=["0190f6a1-0000-7000-8000-000000000000"],
        workflow={"id": "w1", "node": "n1"},
        exchange="orders",
        routing_key="order.paid",
        headers={"traceparent": "00-abc-def-01"},
    )


def reason_of(data: bytes) -> str:
    with pytest.raises(MalformedMessage) as caught:
        envelope.decode(data)
    return caught.value.reason


def test_an_encoded_envelope_decodes_to_an_equal_envelope() -> None:
    sent = full_envelope()

    assert envelope.decode(envelope.encode(sent)) == sent


def test_a_minimal_envelope_gets_the_documented_defaults() -> None:
    got = envelope.decode(HEAD + b"}")

    assert (got.queue, got.priority, got.args, got.kwargs) == ("default", 0, [], {})
    assert (got.max_attempts, got.max_crashes, got.timeout_ms, got.headers) == (3, 3, None, {})


def test_unknown_fields_are_ignored_so_newer_producers_are_understood() -> None:
    got = envelope.decode(HEAD + b',"sig":"abc","priority":2,"future":{"x":[1,2]}}')

    assert got.task == "shop.send_receipt"
    assert got.priority == 2


def test_random_bytes_are_malformed_and_never_raise_anything_else() -> None:
    rng = random.Random(20300101)
    reasons = set()
    for _ in range(500):
        data = rng.randbytes(rng.randint(1, 200))
        reasons.add(reason_of(data))

    assert reasons <= {"not_json", "invalid_utf8", "invalid_json", "too_deep", "wrong_shape"}
    assert "invalid_utf8" in reasons


def test_empty_bytes_are_invalid_json() -> None:
    assert reason_of(b"") == "invalid_json"


def test_truncated_json_is_invalid_json() -> None:
    data = envelope.encode(full_envelope())

    assert reason_of(data[: len(data) // 2]) == "invalid_json"


def test_invalid_utf8_is_reported_as_such() -> None:
    assert reason_of(HEAD + b',"kwargs":{"name":"caf\xe9"}}') == "invalid_utf8"


@pytest.mark.parametrize(
    "data",
    [
        b"[1, 2, 3]",
        b'"just a string"',
        b'{"v": 1}',  # no id, no task
        HEAD + b',"args":{"not":"a list"}}',
        HEAD + b',"priority":"high"}',
        b'{"v":"1","id":"x","task":"t"}',
    ],
)
def test_json_of_the_wrong_shape_is_wrong_shape(data: bytes) -> None:
    assert reason_of(data) == "wrong_shape"


def test_an_unknown_version_is_refused_even_when_the_rest_fits() -> None:
    data = HEAD.replace(b'"v":1', b'"v":2') + b"}"

    assert reason_of(data) == "unknown_version"


def test_an_unknown_version_wins_over_a_shape_it_may_legitimately_have() -> None:
    assert reason_of(b'{"v":2,"job":{"name":"x"}}') == "unknown_version"


def test_a_payload_over_the_size_cap_is_oversized() -> None:
    padding = b" " * (MAX_PAYLOAD_BYTES + 1 - len(HEAD) - 1)
    data = HEAD + padding + b"}"
    assert len(data) == MAX_PAYLOAD_BYTES + 1

    with pytest.raises(MalformedMessage) as caught:
        envelope.decode(data)

    assert caught.value.reason == "oversized"
    assert str(MAX_PAYLOAD_BYTES) in str(caught.value)


def test_a_payload_at_the_size_cap_is_still_decoded() -> None:
    padding = b" " * (MAX_PAYLOAD_BYTES - len(HEAD) - 1)

    assert envelope.decode(HEAD + padding + b"}").task == "shop.send_receipt"


def test_encode_refuses_an_envelope_over_the_size_cap() -> None:
    big = Envelope(v=VERSION, id="x", task="t", args=["x" * MAX_PAYLOAD_BYTES])

    with pytest.raises(ValueError, match="cap"):
        envelope.encode(big)


def test_nesting_ten_thousand_deep_is_too_deep() -> None:
    data = HEAD + b',"args":' + b"[" * 10_000 + b"]" * 10_000 + b"}"

    assert reason_of(data) == "too_deep"


def test_nesting_just_past_the_cap_is_too_deep_and_at_the_cap_is_fine() -> None:
    def nested(depth: int) -> bytes:
        inner = depth - 2  # the envelope object and the args list count too
        return HEAD + b',"args":[' + b"[" * inner + b"]" * inner + b"]}"

    assert envelope.decode(nested(MAX_DEPTH)).task == "shop.send_receipt"
    assert reason_of(nested(MAX_DEPTH + 1)) == "too_deep"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = '"' + "[{" * 1000 + '\\"' + "]}" + '"'
    got = envelope.decode(HEAD + b',"args":[' + text.encode() + b"]}")

    assert got.args == ["[{" * 1000 + '"]}']


def test_a_million_digit_integer_is_wrong_shape() -> None:
    data = HEAD + b',"args":[' + b"9" * 1_000_000 + b"]}"
    assert len(data) <= MAX_PAYLOAD_BYTES

    assert reason_of(data) == "wrong_shape"


def test_an_integer_of_more_than_4300_digits_is_wrong_shape() -> None:
    assert envelope.decode(HEAD + b',"args":[' + b"9" * 4300 + b"]}").args == [int("9" * 4300)]
    assert reason_of(HEAD + b',"args":[' + b"9" * 4301 + b"]}") == "wrong_shape"


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_not_json(literal: bytes) -> None:
    assert reason_of(HEAD + b',"args":[' + literal + b"]}") == "invalid_json"


class _TouchOnUnpickle:
    """Unpickling this creates the file at `path`: a side effect that must never happen."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_the_pickle_payloads_used_below_do_have_a_side_effect(tmp_path: Path) -> None:
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_TouchOnUnpickle(proof))).close()

    assert proof.exists()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_pickle_payload_is_refused_and_never_unpickled(tmp_path: Path, protocol: int) -> None:
    sentinel = tmp_path / "pwned"
    data = pickle.dumps(_TouchOnUnpickle(sentinel), protocol=protocol)

    with pytest.raises(MalformedMessage) as caught:
        envelope.decode(data)

    assert caught.value.reason == "not_json"
    assert not sentinel.exists()


def test_a_malformed_message_names_its_reason_and_detail() -> None:
    with pytest.raises(MalformedMessage, match=r"malformed message \(invalid_json\)") as caught:
        envelope.decode(b"{")

    assert caught.value.detail
