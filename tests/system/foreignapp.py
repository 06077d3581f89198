"""The README's quick-start task, served by a worker subprocess while a producer that knows only
docs/protocol.md writes jobs for it (tests/system/test_foreign_producer.py)."""

from __future__ import annotations

import errands

app = errands.App()  # ERRANDS_BROKER_URL is set by the test


@app.task(name="shop.send_receipt", queue="mail", max_attempts=5)
def send_receipt(order_id: int) -> str:
    """The README's `shop.send_receipt`, under the name a worker of `shop:app` gives it."""
    return f"receipt for order {order_id} sent"
