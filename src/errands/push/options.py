"""The options of `app.http_target(...)`, as a type both the App's method and target.py use.

Kept apart from target.py so the App can name them without importing httpx.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Required, TypedDict

from errands.push.signing import Secret
from errands.retry import RetryPolicy


class TargetOptions(TypedDict, total=False):
    """`url` (http or https) is required; see `errands.push.target.declare` for the rest."""

    url: Required[str]
    method: str
    headers: Mapping[str, str] | None
    timeout: timedelta
    secret: Secret | None
    queue: str
    priority: int
    max_attempts: int | None
    retry: RetryPolicy | None
    rate_limit: str | None
    burst: int | None
    concurrency_limit: int | None
    result_ttl: timedelta | None
