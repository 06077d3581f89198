"""What a push target's answer means for its job: a 2xx is the job's result, a 408, 429 or 5xx
a retry (after the target's Retry-After when it gives one), any other status a rejection that
is never retried. Pure functions of the answer; target.py makes the request.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from errands.errors import ErrandsError, Retry

#: Bytes of a response body kept as the job's result (and read at all); the rest is dropped.
BODY_LIMIT: Final = 64 * 1024
#: Characters of a failed response's body quoted in the job's error.
EXCERPT: Final = 300
#: The longest wait a Retry-After may ask for; a longer one is cut to this.
RETRY_AFTER_CAP: Final = timedelta(days=1)
#: 4xx statuses that say "try again later" rather than "this request is wrong".
RETRIED_4XX: Final = frozenset({408, 429})


class PushRejected(ErrandsError):
    """A push that can never succeed as it is: the target answered a status that is not
    retried (a 4xx other than 408 and 429, or a 3xx: redirects are not followed), or the
    payload cannot be sent. The job fails at once, whatever attempts it has left."""

    def __init__(self, method: str, url: str, status: int | None, detail: str) -> None:
        self.method, self.url, self.status, self.detail = method, url, status, detail
        what = f"answered {status}" if status is not None else "could not be sent"
        super().__init__(f"{method} {url} {what}; not retried: {detail}")


class PushRetry(Retry):
    """A push to try again: the target answered 408, 429 or 5xx, or could not be reached.
    `in_` is the target's Retry-After, if it gave one (else the task's backoff applies);
    it counts as a failed attempt, like any retry."""

    def __init__(
        self,
        method: str,
        url: str,
        detail: str,
        *,
        status: int | None = None,
        in_: timedelta | None = None,
    ) -> None:
        self.method, self.url, self.status, self.detail = method, url, status, detail
        what = f"answered {status}" if status is not None else "failed"
        after = f", Retry-After {in_.total_seconds():g}s" if in_ is not None else ""
        super().__init__(in_, reason=f"{method} {url} {what}{after}: {detail}")


def retry_after(value: str | None, *, now: datetime) -> timedelta | None:
    """The wait a Retry-After header asks for: delay-seconds or an HTTP date (a date past is
    no wait), at most RETRY_AFTER_CAP; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(timedelta(seconds=min(int(text), 10**9)), RETRY_AFTER_CAP)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322, without saying so
        when = when.replace(tzinfo=UTC)
    return min(max(timedelta(0), when - now), RETRY_AFTER_CAP)


def settle(
    method: str,
    url: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
) -> dict[str, Any]:
    """The job's result for a 2xx answer; PushRetry or PushRejected for any other.

    `body` is what was read of the response, up to BODY_LIMIT + 1 bytes."""
    if 200 <= status < 300:
        return result_of(status, headers.get("content-type", ""), body)
    excerpt = _text(body[: EXCERPT * 4])[:EXCERPT] or "(empty body)"
    if status in RETRIED_4XX or status >= 500:
        wait = retry_after(headers.get("retry-after"), now=now)
        raise PushRetry(method, url, excerpt, status=status, in_=wait)
    raise PushRejected(method, url, status, excerpt)


def result_of(status: int, content_type: str, body: bytes) -> dict[str, Any]:
    """`{"status": ..., "body": ..., "truncated": ...}`: a JSON body decoded, any other as
    text (None when empty), cut to BODY_LIMIT bytes."""
    truncated = len(body) > BODY_LIMIT
    kept = body[:BODY_LIMIT]
    value: Any = _text(kept) if kept else None
    if kept and not truncated and "json" in content_type.lower():
        # A target that mislabels its body keeps it as text.
        with contextlib.suppress(ValueError):
            value = json.loads(kept)
    return {"status": status, "body": value, "truncated": truncated}


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
