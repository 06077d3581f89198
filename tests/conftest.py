"""Suite-wide options: `--run-slow` for the long tiers, `--brokers` for the system suites;
service tests fail or skip clearly."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="run the long (full) tiers too"
    )
    parser.addoption(
        "--brokers",
        default=None,
        metavar="NAMES",
        help="comma-separated brokers the system and chaos suites run on, e.g. sqlite,redis "
        "(default: every one in tests/system/brokers.py whose server is reachable; all of "
        "them under ERRANDS_REQUIRE_SERVICES=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "brokers(*names, reason=...): a system test that runs only on these brokers; "
        "on the others it skips with the reason",
    )
    option = config.getoption("--brokers")
    if option is not None:
        # Checked here, a bad name is one usage error rather than one per collected module.
        # Imported here because the registry imports this module.
        from tests.system.brokers import selected

        selected(option)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="full tier: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def services_required() -> bool:
    """True under ERRANDS_REQUIRE_SERVICES=1 (CI): a missing server fails the run."""
    return os.environ.get("ERRANDS_REQUIRE_SERVICES") == "1"


def require_service(name: str, available: bool, why: str) -> None:
    """Skip when a server is missing, or fail under ERRANDS_REQUIRE_SERVICES=1 (CI)."""
    if available:
        return
    message = f"{name} is not reachable: {why}"
    if services_required():
        pytest.fail(message + " (ERRANDS_REQUIRE_SERVICES=1)")
    pytest.skip(message)
