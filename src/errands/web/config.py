"""WebConfig: what the HTTP API allows (tokens, sizes, waits, leases), read once at start."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

#: The environment variable holding the API's bearer tokens, comma-separated.
TOKENS_ENV = "ERRANDS_API_TOKENS"
#: Argument names whose values the dashboard hides (a regular expression, searched).
REDACT = r"(?i)pass|secret|token|key|auth|credential|cookie|session|private"


@dataclass(frozen=True, slots=True)
class WebConfig:
    """Limits and credentials of one HTTP API.

    An empty `tokens` turns bearer auth off: then only clients on the loopback interface are
    served, so an API bound wider by mistake still refuses strangers (a reverse proxy on this
    machine is a local client, though: behind one, give tokens).
    """

    tokens: tuple[str, ...] = ()
    #: Request bodies beyond this are refused with 413 before they are read whole.
    max_body_bytes: int = 1 << 20
    #: Long polls (waiting for a result, or for a job to claim) end at this at the latest.
    max_wait: timedelta = timedelta(seconds=60)
    #: A lease asked for through the pull API is held to this range.
    min_lease: timedelta = timedelta(seconds=1)
    max_lease: timedelta = timedelta(hours=1)
    default_lease: timedelta = timedelta(seconds=30)
    #: Jobs one claim may take, and jobs one list page may hold.
    max_claim: int = 100
    max_page: int = 500
    #: Run the rescuer and promoter beside the API, so jobs claimed over HTTP by a client that
    #: died run again even where no Python worker runs.
    maintenance: bool = True
    #: The dashboard shows `••••` for every argument, header or result value whose key
    #: matches this regular expression (searched, so "db_password" matches "pass").
    redact: str = REDACT


def tokens_from(
    values: Iterable[str] = (), environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The tokens given (a CLI option) plus those of ERRANDS_API_TOKENS, blanks dropped."""
    env = os.environ if environ is None else environ
    listed = [*values, *env.get(TOKENS_ENV, "").split(",")]
    return tuple(dict.fromkeys(token.strip() for token in listed if token.strip()))


def is_loopback(host: str) -> bool:
    """True for an address or name that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
