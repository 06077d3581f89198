"""CLI fixtures: test apps written as modules under tmp_path, a CliRunner, the SQLite guard.

A test app module gets a unique name, so modules of earlier tests cached in sys.modules never
stand in for it; sys.path and sys.modules are restored after each test.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

import errands


def sqlite_missing() -> str | None:
    """Why the SQLite broker cannot be used yet, or None when it can."""
    try:
        import errands.brokers.sqlite.broker  # noqa: F401
    except ImportError as error:
        return f"errands.brokers.sqlite is not importable yet: {error}"
    return None


requires_sqlite = pytest.mark.skipif(sqlite_missing() is not None, reason=str(sqlite_missing()))

#: The body of the usual test app; {url} is its broker.
SHOP = """
import errands

app = errands.App({url!r})


@app.task(max_attempts=1)
def boom(n: int) -> int:
    raise ValueError(f"boom [bold]{{n}}[/bold]")


@app.task(queue="mail", max_attempts=1)
def bounce(n: int) -> int:
    raise RuntimeError(f"bounced {{n}}")


@app.task
def double(n: int) -> int:
    return 2 * n
"""


class AppModules:
    """Writes test app modules into one directory and imports them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.names: list[str] = []

    def write(self, source: str, *, name: str | None = None) -> str:
        """Write `source` as a module with a fresh name; returns the name."""
        name = name or f"cliapp_{len(self.names)}_{id(self):x}"
        (self.directory / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        self.names.append(name)
        return name

    def load(self, name: str) -> ModuleType:
        """Import a written module (the CLI then finds the same one in sys.modules)."""
        if str(self.directory) not in sys.path:
            sys.path.insert(0, str(self.directory))
        return importlib.import_module(name)

    def shop(self, url: str) -> tuple[str, ModuleType]:
        """The usual test app on `url`, written and imported."""
        name = self.write(SHOP.format(url=url))
        return name, self.load(name)

    def cleanup(self) -> None:
        """Close the apps the modules made and forget the modules."""
        for name in self.names:
            app = getattr(sys.modules.pop(name, None), "app", None)
            if isinstance(app, errands.App):
                app.close()


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppModules]:
    """Test app modules in tmp_path, which is also the current directory."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # the CLI prepends the app directory
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ERRANDS_APP", raising=False)
    written = AppModules(tmp_path)
    yield written
    written.cleanup()


@pytest.fixture(params=["memory", "sqlite"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh broker for the test app: memory (same process as the CLI) or a SQLite file."""
    if request.param == "memory":
        return "memory://"
    if sqlite_missing():
        pytest.skip(str(sqlite_missing()))
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture
def runner() -> CliRunner:
    """Runs commands in this process; stderr is kept apart from stdout."""
    return CliRunner()
