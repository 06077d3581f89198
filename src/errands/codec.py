"""Tagged JSON for task arguments and results: JSON types as they are, a few others tagged.

datetime, date, time, timedelta, UUID, Decimal, bytes, tuple, set, non-finite floats and a
workflow's errands.StepFailed travel as `{"__errands__": "<type>", "v": <json>}` so they come
back as the same type; a user's dict
that holds the tag key is itself tagged, so it comes back unchanged. Anything else is a
TypeError at enqueue, never a pickle.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import uuid
from decimal import Decimal
from typing import Any, Final

import msgspec

from errands.workflow.failure import StepFailed

TAG: Final = "__errands__"
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def _tagged(kind: str, value: object) -> dict[str, object]:
    return {TAG: kind, "v": value}


#: Exact types that travel as they are (subclasses such as enums take the slower path).
_PLAIN: Final = frozenset({str, int, bool, type(None)})


def to_wire(value: Any) -> Any:
    """Turn `value` into plain JSON types, tagging the extra types."""
    if type(value) is list and all(type(v) in _PLAIN for v in value):
        return value  # the common argument list, checked without a call per item
    if isinstance(value, float) and not math.isfinite(value):
        return _tagged("float", repr(value))  # JSON has no NaN or infinity
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"dict keys must be str to travel as JSON, got {key!r}")
            out[key] = to_wire(item)
        return _tagged("dict", out) if TAG in out else out
    return _to_tagged(value)


def _to_tagged(value: Any) -> dict[str, object]:
    if isinstance(value, tuple):
        return _tagged("tuple", [to_wire(v) for v in value])
    if isinstance(value, set | frozenset):
        # Sorted by their JSON so equal sets encode alike in every process (hash order is not).
        items = [to_wire(v) for v in value]
        return _tagged("set", sorted(items, key=lambda item: msgspec.json.encode(item)))
    if isinstance(value, dt.datetime):
        return _tagged("datetime", value.isoformat())
    if isinstance(value, dt.date):
        return _tagged("date", value.isoformat())
    if isinstance(value, dt.time):
        return _tagged("time", value.isoformat())
    if isinstance(value, dt.timedelta):
        # Exact: float seconds would drop microseconds of long durations.
        return _tagged("timedelta", [value.days, value.seconds, value.microseconds])
    if isinstance(value, uuid.UUID):
        return _tagged("uuid", str(value))
    if isinstance(value, Decimal):
        return _tagged("decimal", str(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return _tagged("bytes", base64.b64encode(bytes(value)).decode("ascii"))
    if isinstance(value, StepFailed):
        return _tagged("step_failed", value.to_wire())
    raise TypeError(
        f"cannot send a {type(value).__name__} as a task argument or result: use JSON types, "
        "datetime, date, time, timedelta, UUID, Decimal, bytes, tuple or set"
    )


_FROM_TAG: Final[dict[str, Any]] = {
    "tuple": lambda v: tuple(from_wire(x) for x in v),
    "set": lambda v: {from_wire(x) for x in v},
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda v: dt.timedelta(*v) if isinstance(v, list) else dt.timedelta(seconds=v),
    "float": float,
    "dict": lambda v: {k: from_wire(x) for k, x in v.items()},
    "uuid": uuid.UUID,
    "decimal": Decimal,
    "bytes": base64.b64decode,
    "step_failed": StepFailed.from_wire,
}


def from_wire(value: Any) -> Any:
    """The inverse of `to_wire`; an unknown tag is left as the plain dict it is."""
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    if isinstance(value, dict):
        kind = value.get(TAG)
        if isinstance(kind, str) and len(value) == 2 and "v" in value and kind in _FROM_TAG:
            return _FROM_TAG[kind](value["v"])
        return {k: from_wire(v) for k, v in value.items()}
    return value


def dumps(value: Any) -> bytes:
    """Encode a result or argument list as tagged JSON bytes."""
    return _encoder.encode(to_wire(value))


def loads(data: bytes) -> Any:
    """Decode tagged JSON bytes."""
    return from_wire(_decoder.decode(data))
