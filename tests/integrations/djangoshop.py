"""A user's module with an errands App, named by settings.ERRANDS = {"APP": ...} in
tests/integrations/test_django.py."""

from __future__ import annotations

import errands

app = errands.App("memory://")


@app.task(name="shop.send_receipt")
def send_receipt(order_id: int) -> str:
    """Stand-in for sending a receipt."""
    return f"receipt for order {order_id} sent"
