"""RetryPolicy: given the attempt number and the error, how long to wait, or give up."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter and a cap (the AWS "full jitter" scheme).

    The n-th retry waits a uniform random time in [0, min(cap, base * 2**(n-1))], so a crowd
    of failing jobs spreads out instead of retrying in lock step. `dont_retry` names exception
    types that dead-letter at once.
    """

    base: timedelta = timedelta(seconds=1)
    cap: timedelta = timedelta(minutes=10)
    jitter: bool = True
    dont_retry: tuple[type[BaseException], ...] = ()
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def delay(self, failures: int) -> timedelta:
        """The wait before the next attempt after `failures` failed attempts (>= 1)."""
        ceiling = min(
            self.cap.total_seconds(), self.base.total_seconds() * 2 ** max(0, failures - 1)
        )
        return timedelta(seconds=ceiling * self.rng() if self.jitter else ceiling)

    def retries(self, error: BaseException) -> bool:
        """False for errors that must never be retried."""
        return not isinstance(error, self.dont_retry)
