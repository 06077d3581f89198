"""Problems: every error of the API as `application/problem+json` (RFC 9457)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from errands.errors import (
    BrokerUnavailable,
    ExchangeNotFound,
    JobNotFound,
    ScheduleNotFound,
    Unroutable,
)

#: Problem types are relative URIs under this base, one per kind of failure.
TYPE_BASE = "https://errands.dev/problems/"
PROBLEM_JSON = "application/problem+json"
_encoder = msgspec.json.Encoder()


class Problem(Exception):
    """An error the API answers with, rather than a bug: status, a short kind and the detail."""

    def __init__(self, status: int, kind: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail, self.extra = status, kind, detail, extra


def problem_response(
    status: int,
    kind: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The problem+json response for one failure."""
    body = {
        "type": TYPE_BASE + kind,
        "title": kind.replace("-", " "),
        "status": status,
        "detail": detail,
        **(extra or {}),
    }
    sent = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return Response(_encoder.encode(body), status, headers=sent, media_type=PROBLEM_JSON)


async def on_problem(request: Request, error: Exception) -> Response:
    """A Problem raised by a handler."""
    assert isinstance(error, Problem)
    return problem_response(error.status, error.kind, error.detail, error.extra)


async def on_http(request: Request, error: Exception) -> Response:
    """Starlette's own errors (no such route, method not allowed) in the same shape."""
    assert isinstance(error, HTTPException)
    kinds = {404: "not-found", 405: "method-not-allowed"}
    kind = kinds.get(error.status_code, "http-error")
    # Starlette's 405 carries the Allow header that RFC 9110 requires.
    return problem_response(error.status_code, kind, error.detail, headers=error.headers)


#: Errors of errands itself that a client can act on: their status and kind.
KNOWN: dict[type[Exception], tuple[int, str]] = {
    msgspec.ValidationError: (422, "invalid-body"),
    msgspec.DecodeError: (422, "invalid-body"),
    JobNotFound: (404, "not-found"),
    ScheduleNotFound: (404, "not-found"),
    Unroutable: (422, "unroutable"),
    ExchangeNotFound: (422, "unroutable"),
    BrokerUnavailable: (503, "broker-unavailable"),
    # A call that does not fit its task, or a payload over the envelope's cap.
    TypeError: (422, "invalid-call"),
    ValueError: (422, "invalid-call"),
}


async def on_known(request: Request, error: Exception) -> Response:
    """One of KNOWN, by the nearest class in its MRO."""
    for cls in type(error).__mro__:
        if cls in KNOWN:
            status, kind = KNOWN[cls]
            return problem_response(status, kind, str(error))
    raise error


async def on_crash(request: Request, error: Exception) -> Response:
    """A bug: a 500 that names no internals (Starlette logs the traceback)."""
    return problem_response(500, "internal-error", f"{type(error).__name__}: see the server log")


def handlers() -> dict[Any, Any]:
    """The exception handlers to give Starlette."""
    known: dict[Any, Any] = dict.fromkeys(KNOWN, on_known)
    return {Problem: on_problem, HTTPException: on_http, **known, Exception: on_crash}
