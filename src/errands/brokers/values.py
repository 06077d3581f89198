"""Values every broker stores the same way: instants as epoch milliseconds, and failed
attempts, progress, heartbeats and skipped slots as JSON text, so that one job reads the same
from SQLite, Redis or a foreign client (docs/protocol.md).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec

from errands.brokers.contract import SkippedSlots, WorkerInfo
from errands.job import AttemptError, ErrorKind, Progress

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


def ms_at(instant: datetime) -> int:
    """An aware instant as integer milliseconds since the epoch, UTC (exact, no float)."""
    return (instant - _EPOCH) // _MS


@functools.lru_cache(maxsize=4096)  # a claimed batch repeats its instants (now, expiry)
def at_ms(ms: int) -> datetime:
    """Epoch milliseconds back to an aware UTC datetime, exactly."""
    return _EPOCH + timedelta(0, 0, 0, ms)  # positional: keywords cost twice as much


def at_or_none(ms: int | None) -> datetime | None:
    """`at_ms`, passing None through."""
    return None if ms is None else at_ms(ms)


def error_json(error: AttemptError) -> str:
    """One failed attempt as the JSON object appended to a job's list of errors."""
    return _json_encode(
        {
            "attempt": error.attempt,
            "kind": str(error.kind),
            "type": error.type,
            "message": error.message,
            "traceback": error.traceback,
            "at": None if error.at is None else ms_at(error.at),
        }
    ).decode()


def errors_from_json(text: str | bytes) -> tuple[AttemptError, ...]:
    """A job's list of errors, as stored by appending `error_json` objects."""
    return tuple(
        AttemptError(
            attempt=item["attempt"],
            kind=ErrorKind(item["kind"]),
            type=item["type"],
            message=item["message"],
            traceback=item.get("traceback", ""),
            at=at_or_none(item.get("at")),
        )
        for item in _json_decode(text)
    )


def progress_json(progress: Progress) -> str:
    """What a job said about itself, as stored."""
    return _json_encode({"fraction": progress.fraction, "message": progress.message}).decode()


def progress_from_json(text: str | bytes) -> Progress:
    """The stored `progress_json` back to a value."""
    item = _json_decode(text)
    return Progress(fraction=item["fraction"], message=item.get("message", ""))


def heartbeat_json(info: WorkerInfo) -> str:
    """A worker's heartbeat as one JSON object (without `seen_at`, which the broker sets)."""
    return _json_encode(
        {
            "id": info.id,
            "hostname": info.hostname,
            "pid": info.pid,
            "queues": list(info.queues),
            "concurrency": info.concurrency,
            "started_at": ms_at(info.started_at),
            "running": info.running,
        }
    ).decode()


def heartbeat_from_json(text: str | bytes, seen_ms: int) -> WorkerInfo:
    """A stored `heartbeat_json`, seen at `seen_ms`."""
    item = _json_decode(text)
    return WorkerInfo(
        id=item["id"],
        hostname=item["hostname"],
        pid=item["pid"],
        queues=tuple(item["queues"]),
        concurrency=item["concurrency"],
        started_at=at_ms(item["started_at"]),
        running=item["running"],
        seen_at=at_ms(seen_ms),
    )


def skipped_json(skipped: SkippedSlots) -> str:
    """One skipped-slots record as the JSON object appended to a schedule's list."""
    return _json_encode(
        {
            "first": ms_at(skipped.first),
            "last": ms_at(skipped.last),
            "count": skipped.count,
            "reason": skipped.reason,
            "at": ms_at(skipped.recorded_at),
        }
    ).decode()


def skipped_from_json(text: str | bytes) -> tuple[SkippedSlots, ...]:
    """A schedule's list of skipped-slots records, stored as a JSON array of `skipped_json`."""
    return tuple(
        SkippedSlots(
            first=at_ms(item["first"]),
            last=at_ms(item["last"]),
            count=item["count"],
            reason=item["reason"],
            recorded_at=at_ms(item["at"]),
        )
        for item in _json_decode(text)
    )
