"""T6's hostile payloads: 12 kinds of bytes that no producer of errands would write, each with
the dead-letter reason the worker must give it.

`codes` are the MalformedMessage reason codes (envelope.py) allowed in the error message of a
`malformed` job; None means the message carries no code (a codec error, not an envelope one).
"""

from __future__ import annotations

import builtins
import pickle
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from errands.envelope import MAX_PAYLOAD_BYTES
from errands.job import FailReason

KINDS = (
    "random_bytes",
    "truncated_json",
    "invalid_utf8",
    "wrong_shape",
    "unknown_task",
    "wrong_arguments",
    "oversized",
    "deep_nesting",
    "huge_integer",
    "nan",
    "pickle",
    "unknown_version",
)
MALFORMED = FailReason.MALFORMED


@dataclass(frozen=True)
class Hostile:
    kind: str
    variant: str
    raw: bytes
    reason: FailReason
    codes: frozenset[str | None]


def envelope(task: str = "noop", args: str = "[1]", extra: str = "", v: str = "1") -> bytes:
    """A hand-written envelope, so every byte of it is the test's choice."""
    text = f'{{"v":{v},"id":"hostile","task":"{task}","args":{args}{extra}}}'
    return text.encode()


class _WritesSentinel:
    """Unpickling this calls open(path, "w"): the file appears only if someone unpickles it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (builtins.open, (self.path, "w"))


def pickle_payload(sentinel: Path, protocol: int) -> bytes:
    return pickle.dumps(_WritesSentinel(sentinel), protocol=protocol)


def generate(per_kind: int, sentinel: Path, seed: int) -> Iterator[Hostile]:
    """`per_kind` payloads of every kind, variants in turn."""
    rng = random.Random(seed)
    makers = {kind: globals()[f"_{kind}"] for kind in KINDS}
    for kind, make in makers.items():
        for i in range(per_kind):
            variant, raw, reason, codes = make(i, rng, sentinel)
            yield Hostile(kind, variant, raw, reason, frozenset(codes))


Made = tuple[str, bytes, FailReason, set[str | None]]
ANY_DECODE = {"not_json", "invalid_utf8", "invalid_json", "wrong_shape", "too_deep"}


def _random_bytes(i: int, rng: random.Random, sentinel: Path) -> Made:
    return "random", rng.randbytes(rng.randint(1, 4096)), MALFORMED, ANY_DECODE


def _truncated_json(i: int, rng: random.Random, sentinel: Path) -> Made:
    whole = envelope(args=f'["{"x" * rng.randint(0, 200)}", {i}]', extra=',"kwargs":{}')
    return "cut", whole[: rng.randint(1, len(whole) - 1)], MALFORMED, {"invalid_json"}


_BAD_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf", b"\xe2")


def _invalid_utf8(i: int, rng: random.Random, sentinel: Path) -> Made:
    bad = _BAD_UTF8[i % len(_BAD_UTF8)]
    raw = b'{"v":1,"id":"hostile","task":"noop","args":["' + bad + b'"]}'
    return bad.hex(), raw, MALFORMED, {"invalid_utf8"}


_SHAPES: tuple[tuple[str, bytes, set[str | None]], ...] = (
    ("array", b"[]", {"wrong_shape"}),
    ("string", b'"noop"', {"wrong_shape"}),
    ("null", b"null", {"wrong_shape"}),
    ("no id or task", b'{"v":1}', {"wrong_shape"}),
    ("v as text", b'{"v":"1","id":"hostile","task":"noop"}', {"wrong_shape"}),
    ("task as list", b'{"v":1,"id":"hostile","task":["noop"],"args":[1]}', {"wrong_shape"}),
    ("id as number", b'{"v":1,"id":7,"task":"noop","args":[1]}', {"wrong_shape"}),
    ("args as object", envelope(args='{"i":1}'), {"wrong_shape"}),
    ("kwargs as list", envelope(extra=',"kwargs":[1]'), {"wrong_shape"}),
    ("header not text", envelope(extra=',"headers":{"a":1}'), {"wrong_shape"}),
    ("bad tagged value", envelope(args='[{"__errands__":"datetime","v":"not a date"}]'), {None}),
)


def _wrong_shape(i: int, rng: random.Random, sentinel: Path) -> Made:
    name, raw, codes = _SHAPES[i % len(_SHAPES)]
    return name, raw, MALFORMED, codes


_TASKS = ("no.such.task", "os.system", "__import__", "noop ", "NOOP", "")


def _unknown_task(i: int, rng: random.Random, sentinel: Path) -> Made:
    name = _TASKS[i % len(_TASKS)]
    return repr(name), envelope(task=name), FailReason.UNKNOWN_TASK, {None}


# Arity and names are checked by binding to the signature before the task runs (bad_arguments);
# a value of the wrong type binds, reaches `x + 1` in add_one and raises TypeError there, so it
# is retried like any raising job and dead-lettered `error` after max_attempts (3).
_ARGUMENTS: tuple[tuple[str, bytes, FailReason], ...] = (
    ("too many", envelope(args="[1, 2, 3]"), FailReason.BAD_ARGUMENTS),
    ("too few", envelope(args="[]"), FailReason.BAD_ARGUMENTS),
    ("unknown kwarg", envelope(args="[]", extra=',"kwargs":{"j":1}'), FailReason.BAD_ARGUMENTS),
    ("given twice", envelope(args="[1]", extra=',"kwargs":{"i":1}'), FailReason.BAD_ARGUMENTS),
    ("text for int", envelope(task="add_one", args='["abc"]'), FailReason.ERROR),
    ("null for int", envelope(task="add_one", args="[null]"), FailReason.ERROR),
    ("list for int", envelope(task="add_one", args="[[1]]"), FailReason.ERROR),
)


def _wrong_arguments(i: int, rng: random.Random, sentinel: Path) -> Made:
    name, raw, reason = _ARGUMENTS[i % len(_ARGUMENTS)]
    return name, raw, reason, {None}


def _oversized(i: int, rng: random.Random, sentinel: Path) -> Made:
    filler = "x" * (MAX_PAYLOAD_BYTES + rng.randint(0, 4096))
    return "over 1 MiB", envelope(args=f'["{filler}"]'), MALFORMED, {"oversized"}


def _deep_nesting(i: int, rng: random.Random, sentinel: Path) -> Made:
    depth = 10_000
    if i % 2:
        inner = '{"a":' * depth + "1" + "}" * depth
        return "objects", envelope(args=f"[{inner}]"), MALFORMED, {"too_deep"}
    return "arrays", envelope(args="[" + "[" * depth + "]" * depth + "]"), MALFORMED, {"too_deep"}


def _huge_integer(i: int, rng: random.Random, sentinel: Path) -> Made:
    digits = "9" + "0" * (10**6 - 1)  # a 10**6-digit integer, just under the size cap
    where = i % 4
    if where == 0:
        return "in args", envelope(args=f"[{digits}]"), MALFORMED, {"wrong_shape"}
    if where == 1:
        raw = envelope(args="[]", extra=f',"kwargs":{{"i":{digits}}}')
        return "in kwargs", raw, MALFORMED, {"wrong_shape"}
    if where == 2:
        raw = envelope(extra=f',"priority":{digits}')
        return "as priority", raw, MALFORMED, {"wrong_shape"}
    return "as version", envelope(v=digits), MALFORMED, {"wrong_shape"}


_NANS = ("NaN", "-NaN", "nan", "Infinity", "-Infinity")


def _nan(i: int, rng: random.Random, sentinel: Path) -> Made:
    token = _NANS[i % len(_NANS)]
    return token, envelope(args=f"[{token}]"), MALFORMED, {"invalid_json"}


def _pickle(i: int, rng: random.Random, sentinel: Path) -> Made:
    protocol = i % (pickle.HIGHEST_PROTOCOL + 1)
    raw = pickle_payload(sentinel, protocol)
    if i % 7 == 6:  # a leading space hides the opcode from the pickle sniffing
        return f"protocol {protocol} after a space", b" " + raw, MALFORMED, ANY_DECODE
    return f"protocol {protocol}", raw, MALFORMED, {"not_json"}


_VERSIONS = ("0", "2", "99", "-1")


def _unknown_version(i: int, rng: random.Random, sentinel: Path) -> Made:
    v = _VERSIONS[i % len(_VERSIONS)]
    if i % 5 == 4:  # a future envelope of another shape is still reported by its version
        raw = f'{{"v":{v},"id":7,"task":["noop"]}}'.encode()
        return f"v={v}, other shape", raw, MALFORMED, {"unknown_version"}
    return f"v={v}", envelope(v=v), MALFORMED, {"unknown_version"}
