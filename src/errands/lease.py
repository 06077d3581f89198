"""Lease: the right to run one claimed job until it expires, fenced by a fresh token per claim."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Self

from errands.job import JobId


@dataclass(frozen=True, slots=True)
class Lease:
    """Held by the worker that claimed a job; every write about the job must present the token."""

    job_id: JobId
    attempt: int
    token: str
    expires_at: datetime

    def extended_to(self, expires_at: datetime) -> Self:
        """A new value with a later expiry; this one is unchanged."""
        return replace(self, expires_at=expires_at)


def new_token() -> str:
    """A fresh, unguessable lease token."""
    return secrets.token_hex(16)
