"""Context: what every route reaches through `request.app.state.errands`, and the helpers
routes share to read their input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

import msgspec
from starlette.requests import Request

from errands.app import App
from errands.web.config import WebConfig
from errands.web.problems import Problem

if TYPE_CHECKING:
    from errands.web.metrics import Meter

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Context:
    """The errands App the API serves, its limits, and its counters (None without metrics)."""

    app: App
    config: WebConfig
    meter: Meter | None = None


def context(request: Request) -> Context:
    """The Context of the API serving `request`."""
    found: Context = request.app.state.errands
    return found


async def body(request: Request, kind: type[S]) -> S:
    """The request's JSON body as `kind`; msgspec's error (a 422) names the bad field."""
    raw = await request.body()
    if not raw:
        raise Problem(422, "invalid-body", "a JSON body is needed")
    return msgspec.json.decode(raw, type=kind)


def query_int(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    """An integer query parameter within [low, high]."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(422, "invalid-query", f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise Problem(422, "invalid-query", f"{name} must be within {low} and {high}")
    return value


def query_seconds(request: Request, name: str, default: float, cap: timedelta) -> timedelta:
    """A duration query parameter in seconds, held to [0, cap]."""
    raw = request.query_params.get(name)
    try:
        value = default if raw is None else float(raw)
    except ValueError:
        raise Problem(422, "invalid-query", f"{name} must be seconds, got {raw!r}") from None
    if value != value or value < 0:  # NaN or negative
        raise Problem(422, "invalid-query", f"{name} must be a number of seconds >= 0")
    # Capped as a float first: a huge value would overflow timedelta.
    return timedelta(seconds=min(value, cap.total_seconds()))
