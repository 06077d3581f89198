"""HTTP push targets: jobs whose execution is one HTTP request a worker makes, signed, retried
by status; and `verify_signature`, for the service that receives them.

`app.http_target(...)` declares a target (target.py, which needs httpx: errands[web]); the
names here import without httpx, so a receiving service needs errands alone.
"""

from errands.push.responses import PushRejected, PushRetry, retry_after
from errands.push.signing import (
    SECRET_ENV,
    SIGNATURE_HEADER,
    InvalidSignature,
    sign,
    verify_signature,
)

__all__ = [
    "SECRET_ENV",
    "SIGNATURE_HEADER",
    "InvalidSignature",
    "PushRejected",
    "PushRetry",
    "retry_after",
    "sign",
    "verify_signature",
]
