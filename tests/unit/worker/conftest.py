"""Worker helpers: run an in-process worker to idle and keep it, insert raw job specs."""

from __future__ import annotations

from typing import Any

import errands
from errands.brokers.contract import Enqueued
from errands.job import JobSpec
from errands.worker.worker import Worker


def run_worker(app: errands.App, **options: Any) -> Worker:
    """Run a worker of `app` until nothing is claimable or running; return it for inspection."""
    worker = app.worker(**options)
    app.portal.call(worker.run, until_idle=True)
    return worker


def insert(app: errands.App, *specs: JobSpec) -> list[Enqueued]:
    """Store specs as they are, as a producer in another language would."""
    return app.portal.call(app.call_broker, lambda broker: broker.enqueue_many(list(specs)))
