"""Suite-wide options: `--run-slow` for the long tiers; service tests fail or skip clearly."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="run the long (full) tiers too"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="full tier: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def require_service(name: str, available: bool, why: str) -> None:
    """Skip when a server is missing, or fail under ERRANDS_REQUIRE_SERVICES=1 (CI)."""
    if available:
        return
    message = f"{name} is not reachable: {why}"
    if os.environ.get("ERRANDS_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (ERRANDS_REQUIRE_SERVICES=1)")
    pytest.skip(message)
