"""The OpenAPI 3.1 document of the API: paths written here, schemas generated from the
Structs that check the bodies (schemas.py, views.py), so the document cannot drift from them."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from errands import __version__
from errands.job import JobState
from errands.web import schemas, views
from errands.web.problems import PROBLEM_JSON
from errands.web.views import JSON

PREFIX = "/api/v1"
_REF = "#/components/schemas/{name}"
_MODELS: tuple[Any, ...] = (
    schemas.EnqueueRequest,
    schemas.BatchRequest,
    schemas.PublishRequest,
    schemas.EnqueueResponse,
    schemas.ClaimRequest,
    schemas.ClaimResponse,
    schemas.ExtendRequest,
    schemas.ExtendResponse,
    schemas.FinishRequest,
    schemas.FinishResponse,
    schemas.Health,
    views.JobView,
    views.JobPage,
    list[views.QueueView],
    views.QueueView,
    list[views.WorkerView],
    list[views.ScheduleView],
)
_PROBLEM = {
    "type": "object",
    "description": "An error, as RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
    "required": ["type", "title", "status", "detail"],
}


#: A routing key is refused without an exchange: said in the schema, so clients know it.
_ROUTING_KEY_NEEDS_EXCHANGE = {
    "if": {"properties": {"routing_key": {"type": "string"}}, "required": ["routing_key"]},
    "then": {"properties": {"exchange": {"type": "string"}}, "required": ["exchange"]},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _array(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


def _op(
    summary: str,
    reply: dict[str, Any] | None,
    *,
    request: str | None = None,
    status: str = "200",
    params: tuple[dict[str, Any], ...] = (),
    errors: tuple[str, ...] = ("401", "422"),
) -> dict[str, Any]:
    content = {"application/json": {"schema": reply}} if reply is not None else None
    responses: dict[str, Any] = {
        status: {"description": summary, **({"content": content} if content else {})}
    }
    for code in errors:
        responses[code] = {"$ref": "#/components/responses/Problem"}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        operation["parameters"] = list(params)
    if request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(request)}},
        }
    return operation


def _param(name: str, where: str, kind: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": text,
        "schema": {"type": kind, **extra},
    }


_ID = _param("id", "path", "string", "the job id")
_QUEUE = _param("name", "path", "string", "the queue")
_PAGE = (
    _param("queue", "query", "string", "only this queue"),
    _param("task", "query", "string", "only this task"),
    _param("workflow", "query", "string", "only the jobs of this workflow (its id)"),
    _param("idempotency_key", "query", "string", "only the jobs holding this key, of any task"),
    _param("limit", "query", "integer", "jobs per page", minimum=1, maximum=500, default=100),
    _param("cursor", "query", "string", "next_cursor of the previous page"),
)
_STATE = {
    "name": "state",
    "in": "query",
    "description": "only these states (repeat the parameter for several)",
    "schema": {"type": "array", "items": {"enum": [state.value for state in JobState]}},
    "style": "form",
    "explode": True,
}
_TIMEOUT = _param("timeout", "query", "number", "seconds to wait at most (capped)", minimum=0)
_BODY_ERRORS = ("401", "413", "422")
#: A path parameter that cannot be a name (a "/" or a newline in it) matches no route.
_NAMED = ("401", "404")


def _paths() -> dict[str, Any]:
    job = _ref("JobView")
    enqueued = _ref("EnqueueResponse")
    return {
        # No token needed: `security: []` overrides the document's.
        "/health": {"get": {**_op("The API answers", _ref("Health"), errors=()), "security": []}},
        "/jobs": {
            "post": _op(
                "Enqueue one job",
                enqueued,
                request="EnqueueRequest",
                status="201",
                errors=_BODY_ERRORS,
            ),
            "get": _op("List jobs, newest first", _ref("JobPage"), params=(*_PAGE, _STATE)),
        },
        "/jobs/batch": {
            "post": _op(
                "Enqueue jobs in one atomic write",
                enqueued,
                request="BatchRequest",
                status="201",
                errors=_BODY_ERRORS,
            )
        },
        "/events": {
            "post": _op(
                "Publish an event",
                enqueued,
                request="PublishRequest",
                status="201",
                errors=_BODY_ERRORS,
            )
        },
        "/jobs/{id}": {
            "get": _op("A job as stored now", job, params=(_ID,), errors=("401", "404"))
        },
        "/jobs/{id}/wait": {
            "get": _op(
                "The job once done, or at the timeout",
                job,
                params=(_ID, _TIMEOUT),
                errors=("401", "404", "422"),
            )
        },
        "/jobs/{id}/cancel": {
            "post": _op("Cancel a job", job, params=(_ID,), errors=("401", "404"))
        },
        "/jobs/{id}/requeue": {
            "post": _op(
                "Run a failed or cancelled job again",
                job,
                params=(_ID,),
                errors=("401", "404", "409"),
            )
        },
        "/jobs/{id}/extend": {
            "post": _op(
                "Keep a claimed job's lease",
                _ref("ExtendResponse"),
                request="ExtendRequest",
                params=(_ID,),
                errors=(*_BODY_ERRORS, "404", "409"),
            )
        },
        "/jobs/{id}/finish": {
            "post": _op(
                "Store how a claimed job ended",
                _ref("FinishResponse"),
                request="FinishRequest",
                params=(_ID,),
                errors=(*_BODY_ERRORS, "404", "409"),
            )
        },
        "/dead-letters": {"get": _op("Failed jobs, newest first", _ref("JobPage"), params=_PAGE)},
        "/queues": {
            "get": _op("Queues with their jobs by state", _array("QueueView"), errors=("401",))
        },
        "/queues/{name}": {
            "get": _op("One queue", _ref("QueueView"), params=(_QUEUE,), errors=_NAMED)
        },
        "/queues/{name}/pause": {
            "post": _op("Pause a queue", _ref("QueueView"), params=(_QUEUE,), errors=_NAMED)
        },
        "/queues/{name}/resume": {
            "post": _op("Resume a queue", _ref("QueueView"), params=(_QUEUE,), errors=_NAMED)
        },
        "/queues/{name}/claim": {
            "post": _op(
                "Claim jobs under a lease",
                _ref("ClaimResponse"),
                request="ClaimRequest",
                params=(_QUEUE,),
                errors=(*_BODY_ERRORS, "404"),
            )
        },
        "/schedules": {"get": _op("Stored schedules", _array("ScheduleView"), errors=("401",))},
        "/workers": {
            "get": _op("Workers with a recent heartbeat", _array("WorkerView"), errors=("401",))
        },
    }


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once)."""
    _, components = msgspec.json.schema_components(_MODELS, ref_template=_REF)
    components["Problem"] = _PROBLEM
    components["EnqueueRequest"].update(_ROUTING_KEY_NEEDS_EXCHANGE)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "errands HTTP API",
            "version": __version__,
            "description": "Enqueue, inspect and work errands jobs over HTTP (docs/http.md).",
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Problem": {
                    "description": "An error",
                    "content": {PROBLEM_JSON: {"schema": _ref("Problem")}},
                }
            },
        },
    }


async def openapi(request: Request) -> Response:
    """GET /openapi.json; its server URL is where this request found the API (root_path ends
    with the /api/v1 mount, after any path the API itself is mounted under)."""
    root = request.scope.get("root_path") or PREFIX
    return JSON({**document(), "servers": [{"url": root}]})
