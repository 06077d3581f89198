"""Fixtures for the dashboard: an App on a SQLite file of the test with a few tasks, its
dashboard through Starlette's TestClient or served by uvicorn on a free port, and a headless
Debian chromium driven by Playwright."""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # TestClient's note about httpx2
    from starlette.testclient import TestClient

import errands
from errands.web import WebConfig, create_app
from tests.conftest import require_service
from tests.web.conftest import LOCAL, ROOT, free_port

T = TypeVar("T")
#: Where the browser tests write the screenshots docs/dashboard.md shows.
SHOTS = ROOT / "docs" / "screenshots"
#: Debian's chromium; PLAYWRIGHT_CHROMIUM_EXECUTABLE_PATH names another.
CHROMIUM = os.environ.get("PLAYWRIGHT_CHROMIUM_EXECUTABLE_PATH", "/usr/bin/chromium")
TASKS = """
import time

import errands

app = errands.App(URL)


@app.task(name="math.add")
def add(a, b, **options):
    return {"sum": a + b, "api_key": "sk-result-secret"}


@app.task(name="slow.nap")
def nap(seconds):
    time.sleep(seconds)  # the work of this task: time passing while a worker drains
    return seconds


@app.task(name="flaky.connect", max_attempts=1)
def connect(host, password=None):
    raise ConnectionRefusedError(f"{host} refused the connection")
"""


def make_app(url: str) -> errands.App:
    """An App on `url` with the tasks of TASKS."""
    namespace: dict[str, Any] = {}
    exec(TASKS.replace("URL", repr(url)), namespace)
    made = namespace["app"]
    assert isinstance(made, errands.App)
    return made


@pytest.fixture
def app(tmp_path: Path) -> Iterator[errands.App]:
    """An App on a SQLite file of this test."""
    made = make_app(f"sqlite:///{tmp_path / 'errands.db'}")
    yield made
    made.close()


@pytest.fixture
def client(app: errands.App) -> Iterator[TestClient]:
    """The dashboard of `app` with no tokens, as a browser on this machine sees it."""
    web = create_app(app, tokens=(), config=WebConfig(maintenance=False))
    with TestClient(web, client=LOCAL, follow_redirects=False) as test_client:
        yield test_client


class Server:
    """The API and dashboard of an App served by uvicorn in a thread, until stop()."""

    def __init__(self, app: errands.App, tokens: tuple[str, ...] = ()) -> None:
        web = create_app(app, tokens=tokens, config=WebConfig(maintenance=False))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            web, port=self.port, log_level="warning", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> Server:
        """Start serving; returns once the server listens (or fails the test)."""
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("the dashboard's server did not start")
            time.sleep(0.01)  # polling the started flag, with a deadline
        return self

    def stop(self) -> None:
        """Stop serving (open event streams are closed after a second's grace)."""
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def server(app: errands.App) -> Iterator[Server]:
    """The dashboard of `app`, without tokens, on a free port."""
    served = Server(app).start()
    yield served
    served.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless chromium (skips without one, or fails under ERRANDS_REQUIRE_SERVICES=1).

    Per module: Playwright's sync API keeps an event loop running in this thread while it is
    open, and other modules' tests make blocking errands calls here."""
    available = Path(CHROMIUM).exists()
    require_service("chromium", available, f"no browser at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(...)` called from another thread: Playwright's sync API runs an event loop in the
    test's thread, where errands' blocking calls refuse to run."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args, **kwargs).result(timeout=120)


class Tab:
    """A browser page at 1280x800 that accepts every confirmation and keeps its errors."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.on("dialog", lambda dialog: dialog.accept())

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} at {message.location}")

    def open(self, path: str) -> Any:
        """Load `path` and wait for it to settle; returns the Playwright page."""
        self.page.goto(self.base + path, wait_until="load")
        return self.page

    def shoot(self, name: str) -> None:
        """Write the page's screenshot to docs/screenshots/NAME.png."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[Tab]:
    """A fresh browser context on the served dashboard."""
    opened = Tab(browser, server.url)
    yield opened
    opened.context.close()
