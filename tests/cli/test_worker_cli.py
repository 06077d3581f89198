"""`errands worker`: options parsed into a Worker, usage errors exit 2, and a real worker
process that runs a job and exits 0 on SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from errands.cli import worker as worker_cli
from errands.cli.main import main
from errands.cli.target import Target
from tests.cli.conftest import AppModules, requires_sqlite

WITHIN = timedelta(seconds=30)


class Served:
    """What the fake serve() saw; looks enough like a Worker for the command."""

    def __init__(self) -> None:
        self.target: Target | None = None
        self.options: dict[str, Any] = {}
        self.restart_requested, self.id, self.ran = False, "fake", 0
        self.log_level: str | None = None

    async def __call__(self, target: Target, options: dict[str, Any]) -> Served:
        self.target, self.options = target, options
        return self


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Served:
    """The command runs everything but the worker (and leaves this process's logging alone)."""
    fake = Served()
    monkeypatch.setattr(worker_cli, "serve", fake)
    monkeypatch.setattr(
        worker_cli, "configure_logging", lambda level: setattr(fake, "log_level", level)
    )
    return fake


def test_options_become_worker_arguments_in_their_units(
    runner: CliRunner, modules: AppModules, served: Served
) -> None:
    name, module = modules.shop("memory://")

    result = runner.invoke(
        main,
        [
            *("worker", f"{name}:app", "--queues", "mail, default", "--concurrency", "3"),
            *("--pool", "process", "--grace", "2.5", "--lease", "10", "--processes", "2"),
            *("--max-jobs-per-child", "50", "--max-memory", "256", "--max-memory-hard", "512"),
            *("--prefetch", "2", "--log-level", "WARNING"),
        ],
    )

    assert result.exit_code == 0, result.output
    assert served.target is not None
    assert served.target.app is module.app
    assert module.app.import_ref == f"{name}:app"  # how process-pool children find it
    assert served.log_level == "warning"
    assert served.options == {
        "queues": ("mail", "default"),
        "concurrency": 3,
        "pool": "process",
        "grace": timedelta(seconds=2.5),
        "lease": timedelta(seconds=10),
        "processes": 2,
        "max_jobs_per_child": 50,
        "max_memory": 256 * 1024 * 1024,
        "max_memory_hard": 512 * 1024 * 1024,
        "prefetch": 2,
        "scheduler": None,
        "strict": None,
    }


def test_a_process_pool_claims_as_many_jobs_as_it_has_children(
    runner: CliRunner, modules: AppModules, served: Served
) -> None:
    name, _ = modules.shop("memory://")

    result = runner.invoke(main, ["worker", name, "--pool", "process", "--processes", "3"])

    assert result.exit_code == 0, result.output
    assert (served.options["processes"], served.options["concurrency"]) == (3, 3)


def test_unset_options_are_left_to_the_worker(
    runner: CliRunner, modules: AppModules, served: Served
) -> None:
    name, _ = modules.shop("memory://")

    result = runner.invoke(main, ["worker", name])

    assert result.exit_code == 0, result.output
    assert set(served.options.values()) == {None}


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--queues", ""], "''"),
        (["--queues", "mail,,default"], "'mail,,default'"),
        (["--concurrency", "0"], "0"),
        (["--concurrency", "-4"], "-4"),
        (["--concurrency", "many"], "'many'"),
        (["--pool", "fibers"], "'fibers'"),
        (["--grace", "-1"], "-1"),
        (["--lease", "0"], "0"),
        (["--processes", "0"], "0"),
        (["--max-memory", "0"], "0"),
        (["--log-level", "loud"], "'loud'"),
    ],
)
def test_a_bad_option_exits_2_naming_the_value(
    runner: CliRunner, modules: AppModules, served: Served, args: list[str], named: str
) -> None:
    name, _ = modules.shop("memory://")

    result = runner.invoke(main, ["worker", f"{name}:app", *args])

    assert result.exit_code == 2
    error = result.output.strip().splitlines()[-1]
    assert error.startswith("Error: Invalid value for")
    assert named in error
    assert served.target is None  # nothing ran


def test_an_unimportable_target_exits_2_naming_it(
    runner: CliRunner, modules: AppModules, served: Served
) -> None:
    result = runner.invoke(main, ["worker", "missing_module_xyz:app"])

    assert result.exit_code == 2
    assert "'missing_module_xyz:app'" in result.output.strip().splitlines()[-1]


def test_a_broker_url_no_broker_handles_exits_2_naming_it_and_the_apps_line(
    runner: CliRunner, modules: AppModules, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERRANDS_BROKER_URL", "carrier-pigeon://coop")
    name = modules.write("import errands\napp = errands.App()\n")

    result = runner.invoke(main, ["worker", name])

    assert result.exit_code == 2
    error = result.output.strip().splitlines()[-1]
    assert "no broker for URL 'carrier-pigeon://coop' (schemes known: " in error
    assert error.endswith(f"{name}.py:2)")  # the App(...) line, not errands' own
    assert served.target is None


def test_queues_no_task_uses_are_named_in_a_warning_with_the_ones_used(
    runner: CliRunner, modules: AppModules, served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    name, _ = modules.shop("memory://")

    with caplog.at_level(logging.WARNING, logger="errands.cli"):
        result = runner.invoke(main, ["worker", name, "--queues", "mail,mial,defualt"])

    assert result.exit_code == 0, result.output
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "'mial', 'defualt'" in warning
    assert "its tasks use 'default', 'mail'" in warning
    assert served.options["queues"] == ("mail", "mial", "defualt")  # a warning, not a refusal


@pytest.mark.parametrize("queues", [None, "mail", "default,mail"])
def test_queues_the_tasks_use_draw_no_warning(
    runner: CliRunner,
    modules: AppModules,
    served: Served,
    caplog: pytest.LogCaptureFixture,
    queues: str | None,
) -> None:
    name, _ = modules.shop("memory://")

    with caplog.at_level(logging.WARNING, logger="errands.cli"):
        result = runner.invoke(main, ["worker", name, *(["--queues", queues] if queues else [])])

    assert result.exit_code == 0, result.output
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_restart_re_executes_python_m_errands_with_the_same_arguments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, list[str]]] = []

    def execv(path: str, args: list[str]) -> None:
        calls.append((path, args))
        raise SystemExit(0)  # the real one never returns

    monkeypatch.setattr(os, "execv", execv)
    monkeypatch.setattr(
        sys, "argv", ["/venv/bin/errands", "worker", "shop:app", "--pool", "thread"]
    )

    with pytest.raises(SystemExit):
        worker_cli.restart()

    executable = sys.executable
    assert calls == [
        (executable, [executable, "-m", "errands", "worker", "shop:app", "--pool", "thread"])
    ]


def test_passwords_are_masked_in_logged_urls() -> None:
    assert worker_cli.masked("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert worker_cli.masked("sqlite:///errands.db") == "sqlite:///errands.db"


# -- a real worker process -------------------------------------------------------------------

WORKER_APP = """
import os
import errands

app = errands.App({url!r})


@app.task
def whoami(n: int) -> list[int]:
    return [n, os.getpid()]
"""


def start_worker(directory: Path, name: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "ERRANDS_APP"}
    return subprocess.Popen(
        [sys.executable, "-m", "errands", "worker", f"{name}:app", *args],
        cwd=directory,  # the target is found from the current directory, like uvicorn's
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(worker: subprocess.Popen[str]) -> tuple[int, str]:
    worker.send_signal(signal.SIGTERM)
    try:
        _, stderr = worker.communicate(timeout=WITHIN.total_seconds())
    except subprocess.TimeoutExpired:
        worker.kill()
        _, stderr = worker.communicate()
        pytest.fail(f"the worker ignored SIGTERM; its log:\n{stderr}")
    return worker.returncode, stderr


@requires_sqlite
@pytest.mark.parametrize("pool", ["thread", "process"])
def test_a_worker_process_runs_jobs_and_exits_0_on_sigterm(
    modules: AppModules, tmp_path: Path, pool: str
) -> None:
    # Relative, as in the quick start: the worker (started in tmp_path) logs the absolute path.
    name = modules.write(WORKER_APP.format(url="sqlite:///jobs.db"))
    producer = modules.load(name)
    worker = start_worker(tmp_path, name, "--pool", pool, "--processes", "1")
    try:
        handles = producer.whoami.enqueue_many([(1,), (2,)])
        values = [handle.result(timeout=WITHIN) for handle in handles]
    finally:
        code, log = stop(worker)

    assert [n for n, _ in values] == [1, 2]
    pids = {pid for _, pid in values}
    if pool == "thread":
        assert pids == {worker.pid}
    else:
        assert worker.pid not in pids  # ran in a child of the worker
    assert code == 0, log
    pools, concurrency = ("async,thread,process", 1) if pool == "process" else ("async,thread", 16)
    database = (tmp_path / "jobs.db").resolve()
    assert f"queues=default concurrency={concurrency} pools={pools} broker={database}\n" in log
    assert "SIGTERM: stopping" in log
    assert "stopped after 2 jobs" in log


def test_weighted_queues_reach_the_worker_as_a_mapping(
    runner: CliRunner, modules: AppModules, served: Served
) -> None:
    name, _ = modules.shop("memory://")
    result = runner.invoke(main, ["worker", name, "--queues", "mail=3,default=1"])
    assert result.exit_code == 0, result.output
    assert served.options["queues"] == {"mail": 3, "default": 1}


def test_weights_with_strict_or_on_only_some_queues_exit_2(
    runner: CliRunner, modules: AppModules
) -> None:
    name, _ = modules.shop("memory://")
    both = runner.invoke(main, ["worker", name, "--queues", "mail=3,default=1", "--strict"])
    assert both.exit_code == 2
    assert "--strict" in both.output
    some = runner.invoke(main, ["worker", name, "--queues", "mail=3,default"])
    assert some.exit_code == 2
    assert "every queue a weight" in some.output


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def scrape_when_up(
    url: str, within: timedelta
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample at `url`, once it answers (polled until `within` has passed)."""
    deadline = time.monotonic() + within.total_seconds()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                text = reply.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # the worker is still starting: poll, with the deadline above
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@requires_sqlite
def test_a_worker_with_metrics_port_serves_its_metrics(modules: AppModules, tmp_path: Path) -> None:
    name = modules.write(WORKER_APP.format(url="sqlite:///jobs.db"))
    producer = modules.load(name)
    port = free_port()
    worker = start_worker(tmp_path, name, "--metrics-port", str(port), "--concurrency", "2")
    try:
        assert producer.whoami.enqueue(5).result(timeout=WITHIN)[0] == 5
        # Counted before the outcome is stored, so a result seen means a job counted.
        seen = scrape_when_up(f"http://127.0.0.1:{port}/metrics", WITHIN)
    finally:
        code, log = stop(worker)

    labels = {("queue", "default"), ("task", f"{name}.whoami"), ("outcome", "completed")}
    assert seen[("errands_jobs_finished_total", frozenset(labels))] == 1, log
    assert seen[("errands_worker_slots", frozenset({("busy", "false")}))] == 2
    assert f"metrics at http://127.0.0.1:{port}/metrics" in log
    assert code == 0, log


def test_a_metrics_port_in_use_exits_1_naming_it(
    runner: CliRunner, modules: AppModules, served: Served
) -> None:
    name, _ = modules.shop("memory://")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(main, ["worker", name, "--metrics-port", str(port)])

    assert result.exit_code == 1
    assert f"--metrics-port {port}: " in result.output
    assert served.target is None  # no worker started
