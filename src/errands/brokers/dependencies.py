"""Dependencies: which pending jobs wait for which, and what a job's ending does to them.

The rule every broker follows (the memory broker through this class, the others in SQL or Lua):
a job that ends (completed, failed, cancelled) gives up each dependency on it once. A dependent
whose dependency ended without completing is cancelled at once (reason parent_failed) when its
policy is "cancel"; otherwise, once no dependency is left, it is released. Each edge is used up
as it fires, so a dependency requeued and ended again never releases its dependents twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from errands.job import JobId, OnFailure

Verdict = Literal["cancel", "release"]


class Dependencies:
    """The edges between pending jobs and the jobs they wait for, both ways."""

    def __init__(self) -> None:
        self._waiting: dict[JobId, set[JobId]] = {}  # dependent -> dependencies left
        self._dependents: dict[JobId, list[JobId]] = {}  # dependency -> dependents
        self._policy: dict[JobId, OnFailure] = {}

    def add(self, job_id: JobId, depends_on: Sequence[JobId], on_failure: OnFailure) -> None:
        """Record that `job_id` waits for every job of `depends_on`."""
        self._waiting[job_id] = set(depends_on)
        self._policy[job_id] = on_failure
        for parent in dict.fromkeys(depends_on):
            self._dependents.setdefault(parent, []).append(job_id)

    def ended(self, job_id: JobId, *, completed: bool) -> list[tuple[JobId, Verdict]]:
        """Use up the edges from `job_id`, which just ended; the dependents to cancel or
        release now (a dependent still waiting for others is left out)."""
        verdicts: list[tuple[JobId, Verdict]] = []
        for child in self._dependents.pop(job_id, ()):
            left = self._waiting.get(child)
            if left is None or job_id not in left:
                continue
            left.discard(job_id)
            if not completed and self._policy[child] == "cancel":
                verdicts.append((child, "cancel"))
            elif not left:
                verdicts.append((child, "release"))
            else:
                continue
            self._forget(child)
        return verdicts

    def drop(self, job_id: JobId) -> None:
        """Forget `job_id` as a dependent, both ways (it left `pending` some other way: a
        cancel, or a purge that deleted it)."""
        left = self._waiting.get(job_id)
        if left is None:
            return
        for parent in left:
            children = self._dependents.get(parent, [])
            if job_id in children:
                children.remove(job_id)
            if not children:
                self._dependents.pop(parent, None)
        self._forget(job_id)

    def _forget(self, job_id: JobId) -> None:
        del self._waiting[job_id]
        del self._policy[job_id]
