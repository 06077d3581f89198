"""The HTTP API's throughput and round trips (run by hand; prints one line per figure).

    flock /tmp/bench.lock python benchmarks/http_api.py [--url URL] [--n N]

Starts `errands serve benchmarks.benchapp:app` on URL (a SQLite file in a temp dir by
default) and, for the round trips, `errands worker benchmarks.benchapp:app` (its async pool
runs `noop_async`). Clients run in this process over keep-alive connections (httpx), on the
same machine as the server:
1. enqueue/s, one job per request: one client, then 8 client threads;
2. enqueue/s in batches of 100 (POST /jobs/batch);
3. round trip p50/p99: POST /jobs, then GET /jobs/{id}/wait until the worker's result;
4. batch round trip p50: a batch of 100, then the wait for its last job;
5. pull API jobs/s: claim 100 at a time, finish each (no Python worker on that queue).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# Run as a script, this file's directory comes first on sys.path, and its name would shadow the
# standard library's http package, which httpx imports.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != ROOT]

import argparse  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import httpx  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="broker URL (default: a SQLite file in a temp dir)")
    parser.add_argument("--n", type=int, default=2000, help="jobs per throughput figure")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = options.url or f"sqlite:///{Path(directory) / 'errands.db'}"
        env = {**os.environ, "ERRANDS_BENCH_URL": url, "ERRANDS_LOG_JOBS": "0"}
        port = _free_port()
        base = f"http://127.0.0.1:{port}/api/v1"
        server = _start(
            ["serve", "benchmarks.benchapp:app", "--port", str(port), "--log-level", "warning"], env
        )
        try:
            _ready(base)
            print(f"broker {url.split('?')[0]}, {os.cpu_count()} CPUs, client on the same host")
            _throughput(base, options.n)
            worker = _start(["worker", "benchmarks.benchapp:app", "--queues", "default"], env)
            try:
                _round_trips(base)
            finally:
                worker.terminate()
                worker.wait()
            _pull(base, options.n)
        finally:
            server.terminate()
            server.wait()


def _throughput(base: str, n: int) -> None:
    job = {"task": "noop_async", "args": [1], "queue": "bench"}
    with httpx.Client(base_url=base) as client:
        began = time.perf_counter()
        for _ in range(n):
            client.post("/jobs", json=job).raise_for_status()
        _rate("enqueue, 1 job per request, 1 client", n, began)

    def one_client(count: int) -> None:
        with httpx.Client(base_url=base) as client:
            for _ in range(count):
                client.post("/jobs", json=job).raise_for_status()

    threads = [threading.Thread(target=one_client, args=(n // 8,)) for _ in range(8)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _rate("enqueue, 1 job per request, 8 clients", n // 8 * 8, began)
    with httpx.Client(base_url=base) as client:
        batch = {"jobs": [job] * 100}
        began = time.perf_counter()
        for _ in range(max(1, n * 5 // 100)):
            client.post("/jobs/batch", json=batch).raise_for_status()
        _rate("enqueue, batches of 100, 1 client", max(1, n * 5 // 100) * 100, began)


def _round_trips(base: str) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        job = {"task": "noop_async", "args": [1]}

        def single() -> None:
            [stored] = client.post("/jobs", json=job).json()["jobs"]
            _wait(client, stored["id"])

        def batch() -> None:
            stored = client.post("/jobs/batch", json={"jobs": [job] * 100}).json()["jobs"]
            _wait(client, stored[-1]["id"])

        for _ in range(20):  # warm up: connections, the worker's first claims
            single()
        _latency("round trip, 1 job (enqueue -> result)", _timed(single, 300))
        _latency("round trip, batch of 100 (enqueue -> last result)", _timed(batch, 30))


def _pull(base: str, n: int) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        job = {"task": "ext.pulled", "queue": "pull"}
        for _ in range(n // 100):
            client.post("/jobs/batch", json={"jobs": [job] * 100}).raise_for_status()
        done = 0
        began = time.perf_counter()
        while done < n // 100 * 100:
            claim = {"worker_id": "bench", "n": 100}
            for got in client.post("/queues/pull/claim", json=claim).json()["jobs"]:
                finish = {"token": got["token"], "outcome": "completed", "result": None}
                client.post(f"/jobs/{got['id']}/finish", json=finish).raise_for_status()
                done += 1
        _rate("pull API, claim 100 + finish each, 1 client", done, began)


def _wait(client: httpx.Client, job_id: str) -> None:
    while not client.get(f"/jobs/{job_id}/wait", params={"timeout": 10}).json()["done"]:
        pass


def _timed(fn: Callable[[], None], times: int) -> list[float]:
    took = []
    for _ in range(times):
        began = time.perf_counter()
        fn()
        took.append(time.perf_counter() - began)
    return took


def _rate(label: str, jobs: int, began: float) -> None:
    print(f"{label:<52} {jobs / (time.perf_counter() - began):>8,.0f} jobs/s")


def _latency(label: str, took: list[float]) -> None:
    cuts = statistics.quantiles(took, n=100)
    print(f"{label:<52} p50 {cuts[49] * 1000:6.1f} ms  p99 {cuts[98] * 1000:6.1f} ms")


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # From the repository's root: with this directory on its path, a child would import this
    # file as the standard library's http.
    command = [sys.executable, "-m", "errands", "--app-dir", str(ROOT.parent), *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _ready(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit("errands serve did not answer within 30 s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


if __name__ == "__main__":
    main()
