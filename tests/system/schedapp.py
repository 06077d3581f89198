"""The App of the real-clock scheduler test: one schedule every 2 seconds, whose job returns
its slot (ERRANDS_BROKER_URL is set by the test)."""

from __future__ import annotations

from datetime import timedelta

import errands

app = errands.App()


@app.periodic(every=timedelta(seconds=2), name="every-2s")
@app.task(name="tick")
async def tick() -> str:
    """Return the slot this run is for."""
    slot = errands.current_job().slot
    assert slot is not None
    return slot.isoformat()
