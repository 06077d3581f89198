"""The wire envelope: a versioned JSON object any language can write (docs/protocol.md).

It carries the request only; a job's state lives in broker fields. Decoding is strict about
shape and size and never evaluates anything: pickle is not a format this module knows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

import msgspec

from errands.errors import MalformedMessage

VERSION: Final = 1
#: Decision: payloads over 1 MiB are refused at enqueue and dead-lettered if found in storage.
#: Large inputs belong in files or object storage, with their path in the arguments.
MAX_PAYLOAD_BYTES: Final = 1 << 20
#: Deeper nesting than this is refused before decoding, so a hostile payload cannot exhaust
#: the C stack of the decoder.
MAX_DEPTH: Final = 64


#: Durations and budgets a worker acts on: bounded, so a hostile value is malformed, not a crash.
Millis = Annotated[int, msgspec.Meta(ge=1, le=10**12)]  # 1 ms to about 31 years
Retention = Annotated[int, msgspec.Meta(ge=0, le=10**12)]  # 0: keep no result
Budget = Annotated[int, msgspec.Meta(ge=1, le=10**6)]


class Envelope(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=False):
    """One job request on the wire; unknown fields are ignored so producers can be newer."""

    v: int
    id: str
    task: str
    queue: str = "default"
    priority: int = 0
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    enqueued_at: datetime | None = None
    scheduled_at: datetime | None = None
    max_attempts: Budget = 3
    max_crashes: Budget = 3
    timeout_ms: Millis | None = None
    result_ttl_ms: Retention | None = None
    idempotency_key: str | None = None
    depends_on: list[str] | None = None
    workflow: dict[str, str] | None = None
    exchange: str | None = None
    routing_key: str | None = None
    headers: dict[str, str] = {}


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)
_version_only = msgspec.json.Decoder(dict[str, Any])


def encode(envelope: Envelope) -> bytes:
    """Envelope to bytes; refuses one over the size cap so it is never stored."""
    data = _encoder.encode(envelope)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ValueError(
            f"job payload is {len(data)} bytes, over the {MAX_PAYLOAD_BYTES}-byte cap: "
            "pass a path or key to large data instead of the data"
        )
    return data


def decode(data: bytes) -> Envelope:
    """Bytes to an Envelope, or MalformedMessage with a short reason code."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise MalformedMessage("oversized", f"{len(data)} bytes > {MAX_PAYLOAD_BYTES}")
    if data[:1] in (b"\x80", b"(", b"c", b"]"):
        # Pickle protocol 2+ starts with 0x80; older ones with an opcode. Never decoded.
        raise MalformedMessage("not_json", "payload is not JSON (pickle is never decoded)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedMessage("invalid_utf8", str(error)) from None
    if _too_deep(text):
        raise MalformedMessage("too_deep", f"nesting deeper than {MAX_DEPTH}")
    try:
        envelope = _decoder.decode(data)
    except msgspec.ValidationError as error:
        _check_version(data)
        raise MalformedMessage("wrong_shape", str(error)) from None
    except msgspec.DecodeError as error:
        raise MalformedMessage("invalid_json", str(error)) from None
    if envelope.v != VERSION:
        raise MalformedMessage("unknown_version", f"envelope version {envelope.v}, want {VERSION}")
    return envelope


def _check_version(data: bytes) -> None:
    try:
        fields = _version_only.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    version = fields.get("v")
    if isinstance(version, int) and version != VERSION:
        raise MalformedMessage("unknown_version", f"envelope version {version}, want {VERSION}")


def _too_deep(text: str) -> bool:
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False  # the common case, decided without a character loop
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False
