"""Test helpers for errands and for users' own tests: a FakeClock, waits with deadlines, and
assertions on enqueued jobs; `errands.testing.plugin` offers them as pytest fixtures.

Tests advance the clock and await states; they never sleep and hope.
"""

from __future__ import annotations

from errands.testing.clock import FakeClock
from errands.testing.jobs import EnqueuedJob, Jobs
from errands.testing.waits import wait_for_state

__all__ = ["EnqueuedJob", "FakeClock", "Jobs", "wait_for_state"]
