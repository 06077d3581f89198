"""Enqueue hooks: observers of the jobs an App's producers send (metrics, tracing).

A hook may add headers to each job's envelope as it is built and hears of each batch once the
broker stored it; it never changes what is stored otherwise. An App with no hook pays one
truth test per batch; the worker side of observing is worker/middleware.py.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from errands.brokers.contract import Enqueued
from errands.job import JobId, JobSpec

log = logging.getLogger("errands.producer")


class EnqueueHook:
    """Base class: every hook does nothing. Hooks run in the producer's thread or loop, once
    per job or per batch, and must return quickly."""

    def headers(self, task: str, queue: str, job_id: JobId) -> Mapping[str, str]:
        """Headers to add to the envelope of job `job_id` (a call's own headers win)."""
        return {}

    def enqueued(self, specs: Sequence[JobSpec], stored: Sequence[Enqueued]) -> None:
        """The broker stored `specs`; `stored[i]` says whether specs[i] was a duplicate."""


def added_headers(
    hooks: Sequence[EnqueueHook], task: str, queue: str, job_id: JobId
) -> dict[str, str]:
    """Every hook's headers for one job; a hook that raises is logged and skipped, so an
    observer never stops an enqueue."""
    added: dict[str, str] = {}
    for hook in hooks:
        try:
            added.update(hook.headers(task, queue, job_id))
        except Exception:
            log.exception("enqueue hook %r failed", hook)
    return added


def tell_enqueued(
    hooks: Sequence[EnqueueHook], specs: Sequence[JobSpec], stored: Sequence[Enqueued]
) -> None:
    """Tell every hook that a batch was stored (nothing to do, and no cost, without hooks)."""
    for hook in hooks:
        try:
            hook.enqueued(specs, stored)
        except Exception:
            log.exception("enqueue hook %r failed", hook)
