"""The errands pytest plugin: an App per test and assertions on its jobs, as fixtures.

Enable it in a conftest.py with `pytest_plugins = ["errands.testing.plugin"]`. The App comes
from `errands_app_factory` (override the fixture, or name a factory in the ini option of the
same name); by default it is a fresh App on the memory broker.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

import pytest

from errands.app import App
from errands.testing.jobs import Jobs

AppFactory = Callable[[], App]

INI_FACTORY = "errands_app_factory"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the ini option naming the App factory ("module:callable")."""
    parser.addini(
        INI_FACTORY,
        help="'module:callable' returning the errands App of each test's errands_app fixture "
        "(default: a fresh App on the memory broker)",
        default="",
    )


def memory_app() -> App:
    """A fresh App on its own memory broker: the default factory."""
    return App("memory://")


@pytest.fixture
def errands_app_factory(pytestconfig: pytest.Config) -> AppFactory:
    """What makes each test's App: the ini option's factory, else `memory_app`. Override this
    fixture to build your own (with your tasks registered on it)."""
    ref = str(pytestconfig.getini(INI_FACTORY)).strip()
    return load_factory(ref) if ref else memory_app


@pytest.fixture
def errands_app(errands_app_factory: AppFactory) -> Iterator[App]:
    """The App of this test, made by `errands_app_factory` and closed after the test; run its
    jobs with `errands_app.run_until_idle()`."""
    app = errands_app_factory()
    if not isinstance(app, App):
        raise TypeError(f"errands_app_factory returned {app!r}, not an errands.App")
    yield app
    app.close()


@pytest.fixture
def errands_jobs(errands_app: App) -> Jobs:
    """Assertions on the jobs of `errands_app`: `errands_jobs.assert_enqueued(task, args=...)`,
    `assert_not_enqueued`, `enqueued`."""
    return Jobs(errands_app)


def load_factory(ref: str) -> AppFactory:
    """The callable that "module:callable" names; a usage error naming `ref` otherwise."""
    module_name, colon, attr = ref.partition(":")
    if not colon or not module_name or not attr:
        raise pytest.UsageError(f"{INI_FACTORY} = {ref!r}: expected 'module:callable'")
    try:
        value: object = importlib.import_module(module_name)
    except ImportError as error:
        raise pytest.UsageError(f"{INI_FACTORY} = {ref!r}: {error}") from None
    for part in attr.split("."):
        value = getattr(value, part, None)
    if not callable(value):
        raise pytest.UsageError(f"{INI_FACTORY} = {ref!r}: not a callable returning an App")
    return value
