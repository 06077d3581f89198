"""Signatures of push requests: the `Errands-Signature` header a worker sends, and the check a
receiving service makes with `verify_signature`.

Stripe's scheme: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` under a shared secret,
so a receiver can tell the request came from a holder of the secret, unaltered and recent.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from errands.errors import ErrandsError

SIGNATURE_HEADER: Final = "Errands-Signature"
#: Where a target declared without `secret=` finds its key, read by the worker at each push.
SECRET_ENV: Final = "ERRANDS_PUSH_SECRET"
#: How far a signature's time may be from the receiver's clock, either way, by default.
TOLERANCE: Final = timedelta(minutes=5)
#: The scheme of the signatures made here; others in a header are ignored (a later scheme can
#: be sent beside this one while receivers upgrade).
SCHEME: Final = "v1"

Secret = str | bytes


class InvalidSignature(ErrandsError, ValueError):
    """A push request whose signature does not hold. `reason` is one of "missing",
    "malformed", "mismatch" (not made with this secret over this body) and "stale" (made
    outside the tolerance: a replay, or a clock that is off)."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"invalid {SIGNATURE_HEADER} ({reason}): {detail}")


def sign(secret: Secret, body: bytes, *, at: datetime) -> str:
    """The `Errands-Signature` value for `body` sent at `at`."""
    stamp = int(at.timestamp())
    return f"t={stamp},{SCHEME}={_digest(secret, stamp, body)}"


def verify_signature(
    secret: Secret | Sequence[Secret],
    body: bytes,
    header: str | None,
    *,
    tolerance: timedelta = TOLERANCE,
    now: datetime | None = None,
) -> None:
    """Check the `Errands-Signature` header of a push request against the raw `body` bytes;
    InvalidSignature says why it does not hold. Several secrets (a sequence) are tried in turn,
    so a receiver accepts the old and the new one while a secret is rotated. Comparisons take
    the same time whatever the digest."""
    if not isinstance(tolerance, timedelta):
        raise TypeError(f"tolerance must be a timedelta, got {tolerance!r}")
    if not header:
        raise InvalidSignature("missing", f"the request has no {SIGNATURE_HEADER} header")
    stamp, digests = _parse(header)
    keys = [secret] if isinstance(secret, str | bytes) else list(secret)
    if not any(
        hmac.compare_digest(_digest(key, stamp, body), digest) for key in keys for digest in digests
    ):
        raise InvalidSignature("mismatch", "no signature matches this body under the secret")
    moment = now or datetime.now(UTC)
    age = moment.timestamp() - stamp
    if abs(age) > tolerance.total_seconds():
        raise InvalidSignature(
            "stale",
            f"signed at t={stamp}, {age:+.0f}s from now; "
            f"the tolerance is {tolerance.total_seconds():g}s",
        )


def _parse(header: str) -> tuple[int, list[str]]:
    """The time and the digests of this scheme in a header value."""
    stamp: int | None = None
    digests: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            stamp = int(value)
        elif key == SCHEME and value:
            digests.append(value)
    if stamp is None or not digests:
        raise InvalidSignature(
            "malformed", f"expected 't=<unix seconds>,{SCHEME}=<hex digest>', got {header[:100]!r}"
        )
    return stamp, digests


def _digest(secret: Secret, stamp: int, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        raise ValueError("a push secret must not be empty: anyone could sign with it")
    return hmac.new(key, b"%d." % stamp + body, hashlib.sha256).hexdigest()
