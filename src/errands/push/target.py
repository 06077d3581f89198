"""HTTP push targets: tasks whose every attempt is one HTTP request a worker makes (Cloud Tasks
style), declared with `app.http_target(...)`.

This module declares the task and makes the request; responses.py says what an answer means,
signing.py signs the body, clients.py holds the shared httpx client.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Unpack
from urllib.parse import urlsplit

try:
    import httpx
except ImportError as missing:  # pragma: no cover - the web extra is part of the test setup
    raise ImportError("HTTP push targets need httpx: pip install 'errands[web]'") from missing

from errands.clock import Clock
from errands.current import RunningJob, current_job
from errands.errors import Timeout
from errands.push.clients import PushClients
from errands.push.options import TargetOptions
from errands.push.responses import BODY_LIMIT, PushRejected, PushRetry, settle
from errands.push.signing import SECRET_ENV, SIGNATURE_HEADER, Secret, sign
from errands.retry import RetryPolicy

if TYPE_CHECKING:
    from errands.app import App
    from errands.task import Task

METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
DEFAULT_TIMEOUT: Final = timedelta(seconds=30)
#: A header name (an RFC 9110 token) and a value of printable ASCII (httpx sends no other).
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VALUE: Final = re.compile(r"[\t\x20-\x7e]*")
#: Headers errands sets on every push; a target's or a call's headers never replace them.
JOB_ID_HEADER: Final = "Errands-Job-Id"
ATTEMPT_HEADER: Final = "Errands-Attempt"
TASK_HEADER: Final = "Errands-Task"


@dataclass(frozen=True, slots=True)
class HttpTarget:
    """Where and how a target's jobs are sent; checked when declared."""

    name: str
    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: timedelta = DEFAULT_TIMEOUT
    #: The HMAC key; None reads ERRANDS_PUSH_SECRET at each push, and without it the
    #: requests go unsigned.
    secret: Secret | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url) if isinstance(self.url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url must be an absolute http(s) URL, got {self.url!r}")
        if self.method not in METHODS:
            raise ValueError(
                f"method must be one of {', '.join(sorted(METHODS))}, got {self.method!r}"
            )
        if not isinstance(self.timeout, timedelta):
            raise TypeError(f"timeout must be a timedelta, got {self.timeout!r}")
        if self.timeout <= timedelta(0):
            raise ValueError(f"timeout must be positive, got {self.timeout!r}")
        if self.secret is not None and (
            not isinstance(self.secret, str | bytes) or not self.secret
        ):
            raise ValueError(
                "secret must be a non-empty str or bytes (or None: $ERRANDS_PUSH_SECRET)"
            )
        bad = unsendable(self.headers)
        if bad is not None:  # here, not at every push
            raise ValueError(bad)

    def key(self) -> Secret | None:
        """The HMAC key of the next push: the declared one, else $ERRANDS_PUSH_SECRET."""
        return self.secret or os.environ.get(SECRET_ENV) or None

    async def push(self, clients: PushClients, payload: Any, clock: Clock) -> dict[str, Any]:
        """Send one job's request under the deadline and settle the answer (responses.py)."""
        body, content_type = encode_body(self, payload)
        headers = self.request_headers(body, content_type, _own_job(self.name), clock)
        seconds = self.timeout.total_seconds()
        try:
            async with asyncio.timeout(seconds), clients.session() as client:
                status, answer, read = await self._exchange(client, body, headers)
        except TimeoutError:
            raise Timeout(f"{self.method} {self.url} did not answer within {seconds:g}s") from None
        except httpx.TransportError as error:  # refused, reset, DNS: the next attempt may reach it
            detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            raise PushRetry(self.method, self.url, detail) from error
        return settle(self.method, self.url, status, answer, read, now=clock.now())

    def request_headers(
        self, body: bytes, content_type: str | None, job: RunningJob | None, clock: Clock
    ) -> httpx.Headers:
        """The target's headers, then the job's own (`options(headers=...)`), then errands',
        each replacing the one before whatever its case."""
        headers = httpx.Headers({"Content-Type": content_type} if content_type else {})
        headers.update(self.headers)
        if job is not None:
            bad = unsendable(job.headers)
            if bad is not None:
                raise PushRejected(self.method, self.url, None, bad)
            headers.update(job.headers)
            headers[JOB_ID_HEADER], headers[ATTEMPT_HEADER] = str(job.id), str(job.attempt)
        headers[TASK_HEADER] = self.name
        key = self.key()
        if key is not None:
            headers[SIGNATURE_HEADER] = sign(key, body, at=clock.now())
        return headers

    async def _exchange(
        self, client: httpx.AsyncClient, body: bytes, headers: httpx.Headers
    ) -> tuple[int, httpx.Headers, bytes]:
        """Status, headers and at most BODY_LIMIT + 1 bytes of the body (enough to tell that
        it was cut)."""
        request = client.build_request(self.method, self.url, content=body, headers=headers)
        response = await client.send(request, stream=True)
        try:
            read = bytearray()
            async for chunk in response.aiter_bytes():
                read += chunk
                if len(read) > BODY_LIMIT:
                    break
            return response.status_code, response.headers, bytes(read)
        finally:
            await response.aclose()


def declare(app: App, name: str, /, **options: Unpack[TargetOptions]) -> Task[..., dict[str, Any]]:
    """Register a task named `name` whose every attempt sends its payload to `url`.

    `method` (POST), `headers` (sent with each request), `timeout` (each attempt's deadline,
    30 s) and `secret` (the HMAC key, else $ERRANDS_PUSH_SECRET) describe the request; `queue`,
    `priority`, `max_attempts`, `retry`, `rate_limit`, `burst`, `concurrency_limit` and
    `result_ttl` are the task's options, as in `app.task`. The task's single argument is the
    payload (docs/http.md, "Push targets"); it returns the answer (responses.result_of).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a push target needs a name, got {name!r}")
    target = HttpTarget(
        name,
        options["url"],
        method=options.get("method", "POST"),
        headers=dict(options.get("headers") or {}),
        timeout=options.get("timeout", DEFAULT_TIMEOUT),
        secret=options.get("secret"),
    )
    clients = PushClients.of(app)

    async def push(payload: Any = None) -> dict[str, Any]:
        return await target.push(clients, payload, app.clock)

    push.__doc__ = f"{target.method} the payload to {target.url} (an HTTP push target)."
    push.__qualname__ = push.__name__ = name
    register = app.task(
        name=name,
        queue=options.get("queue", "default"),
        priority=options.get("priority", 0),
        max_attempts=options.get("max_attempts"),
        retry=options.get("retry") or RetryPolicy(),
        dont_retry=(PushRejected,),
        pool="async",
        result_ttl=options.get("result_ttl"),
        rate_limit=options.get("rate_limit"),
        burst=options.get("burst"),
        concurrency_limit=options.get("concurrency_limit"),
    )
    return register(push)


def encode_body(target: HttpTarget, payload: Any) -> tuple[bytes, str | None]:
    """The request body and its content type: nothing for None, bytes as they are, any other
    value as JSON (dates ISO 8601, UUIDs and decimals as text, durations in seconds)."""
    if payload is None:
        return b"", None
    if isinstance(payload, bytes | bytearray):
        return bytes(payload), "application/octet-stream"
    try:
        text = json.dumps(payload, ensure_ascii=False, allow_nan=False, default=_plain)
    except (TypeError, ValueError) as error:
        raise PushRejected(
            target.method, target.url, None, f"payload is not JSON: {error}"
        ) from None
    return text.encode(), "application/json"


def _plain(value: Any) -> Any:
    """The JSON form of the values tagged JSON carries beyond JSON's own."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON")


def unsendable(headers: Mapping[str, str]) -> str | None:
    """Why these headers cannot be sent (a name that is not a token, a value with a line
    break, a control character or a non-ASCII one); None when they can."""
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or not _VALUE.fullmatch(value):
            return f"a header HTTP cannot carry: {name!r}: {value!r}"
    return None


def _own_job(name: str) -> RunningJob | None:
    """The job being run, when it is one of this target's (not a task calling it inline)."""
    try:
        job = current_job()
    except LookupError:
        return None
    return job if job.task == name else None
