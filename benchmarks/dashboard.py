"""The dashboard's page load times with 100,000 jobs in a SQLite broker (run by hand).

    flock /tmp/bench.lock python benchmarks/dashboard.py [--jobs 100000] [--n 20] [--browser]

Fills a SQLite file in a temp dir with mixed states (enqueued in batches of 5,000): 60% waiting
in `default`, 10% scheduled an hour ahead, 10% completed and 10% dead letters (each run by an
in-process worker), and 10% in workflows (chains of 10). Then serves `create_app` with uvicorn
in a thread and times each page over one keep-alive httpx connection: the median and the
slowest of `--n` loads (server time plus the loopback round trip). `--browser` adds the time
to the load event in headless chromium (/usr/bin/chromium) through Playwright.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn

import errands
from errands.brokers.contract import JobQuery
from errands.job import JobState
from errands.web import WebConfig, create_app

BATCH = 5_000
CHROMIUM = os.environ.get("PLAYWRIGHT_CHROMIUM_EXECUTABLE_PATH", "/usr/bin/chromium")


def build_app(url: str) -> errands.App:
    """The benchmark's App: a task that returns, one that fails, on `url`."""
    app = errands.App(url)

    @app.task(name="bench.add")
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="bench.fail", max_attempts=1)
    def fail(n: int, m: int) -> None:
        raise ValueError(f"job {n} failed on purpose")

    return app


def fill(app: errands.App, total: int) -> None:
    """`total` jobs in mixed states (see the module's docstring)."""
    tenth = total // 10
    add, fail = app.by_name("bench.add"), app.by_name("bench.fail")
    started = time.perf_counter()
    _batches(add.options(queue="mail"), tenth)
    _batches(fail.options(queue="flaky"), tenth)
    app.run_until_idle(queues=["mail", "flaky"], concurrency=64)
    _batches(add.options(queue="reports", delay=timedelta(hours=1)), tenth)
    for _ in range(tenth // 10):
        errands.chain(add.call(1, 1), *[add.call(b=1) for _ in range(9)]).enqueue()
    _batches(add, total - 4 * tenth)
    print(f"filled {total} jobs in {time.perf_counter() - started:.1f} s")


def _batches(task: errands.Task, n: int) -> None:  # type: ignore[type-arg]
    for start in range(0, n, BATCH):
        task.enqueue_many([(i, i) for i in range(start, min(n, start + BATCH))])


def pages(app: errands.App) -> dict[str, str]:
    """The paths to time, with ids of this broker's jobs."""

    async def pick() -> dict[str, str]:
        broker = await app.open_async()
        newest = (await broker.list_jobs(JobQuery(limit=1))).jobs[0]
        middle = (await broker.list_jobs(JobQuery(queue="reports", limit=1))).jobs[0]
        dead = (await broker.list_jobs(JobQuery(states=(JobState.FAILED,), limit=1))).jobs[0]
        pending = await broker.list_jobs(JobQuery(states=(JobState.PENDING,), limit=1))
        flow = errands.envelope.decode(bytes(pending.jobs[0].payload)).workflow or {}
        return {
            "overview": "/",
            "jobs": "/jobs",
            "jobs, failed": "/jobs?state=failed",
            "jobs, default available": "/jobs?queue=default&state=available",
            "jobs, page deep in the middle": f"/jobs?cursor={middle.id}",
            "job (newest)": f"/jobs/{newest.id}",
            "job (dead letter)": f"/jobs/{dead.id}",
            "dead letters": "/dead-letters",
            "schedules": "/schedules",
            "workers": "/workers",
            "workflow": f"/workflows/{flow['id']}",
        }

    return app.portal.call(pick)


def time_pages(base: str, paths: dict[str, str], n: int) -> dict[str, list[float]]:
    """Milliseconds of each load, per page."""
    times: dict[str, list[float]] = {}
    with httpx.Client(base_url=base, timeout=30) as client:
        for name, path in paths.items():
            client.get(path).raise_for_status()  # warm: templates compiled, caches filled
            samples = []
            for _ in range(n):
                started = time.perf_counter()
                client.get(path).raise_for_status()
                samples.append((time.perf_counter() - started) * 1000)
            times[name] = samples
    return times


def browser_loads(base: str, paths: dict[str, str], n: int) -> dict[str, float]:
    """Median milliseconds to the load event in headless chromium, per page."""
    from playwright.sync_api import sync_playwright

    medians: dict[str, float] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for name, path in paths.items():
            samples = []
            for _ in range(n):
                page.goto(base + path, wait_until="load")
                samples.append(
                    page.evaluate(
                        "() => { const t = performance.getEntriesByType('navigation')[0];"
                        " return t.loadEventEnd - t.startTime; }"
                    )
                )
            medians[name] = statistics.median(samples)
        browser.close()
    return medians


def serve(app: errands.App) -> tuple[uvicorn.Server, threading.Thread, str]:
    """The dashboard of `app` on a free port, in a thread."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    web = create_app(app, tokens=(), config=WebConfig(maintenance=False))
    server = uvicorn.Server(uvicorn.Config(web, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs in the broker")
    parser.add_argument("--n", type=int, default=20, help="loads per page")
    parser.add_argument("--browser", action="store_true", help="also time chromium's load event")
    options = parser.parse_args()
    logging.getLogger("errands.jobs").setLevel(logging.CRITICAL)  # 10% fail on purpose
    with tempfile.TemporaryDirectory() as directory:
        app = build_app(f"sqlite:///{Path(directory) / 'errands.db'}")
        fill(app, options.jobs)
        paths = pages(app)
        server, thread, base = serve(app)
        try:
            times = time_pages(base, paths, options.n)
            loads = browser_loads(base, paths, max(options.n // 4, 3)) if options.browser else {}
        finally:
            server.should_exit = True
            thread.join()
            app.close()
    print(f"{options.jobs} jobs, SQLite, {os.cpu_count()} CPUs, client on the same host")
    header = "| page | median ms | max ms |" + (" chromium load ms |" if loads else "")
    print(header)
    print("|---|---:|---:|" + ("---:|" if loads else ""))
    for name, samples in times.items():
        row = f"| {name} | {statistics.median(samples):.1f} | {max(samples):.1f} |"
        print(row + (f" {loads[name]:.0f} |" if loads else ""))


if __name__ == "__main__":
    main()
