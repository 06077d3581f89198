"""`errands schedules` (list, next, add, pause, resume, remove) on the memory broker and on
SQLite, and a real `errands scheduler` process enqueueing an every-second schedule."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

import errands
from errands import envelope
from errands.brokers.contract import JobQuery, Page
from errands.cli.main import main
from errands.current import SCHEDULE_HEADER, SLOT_HEADER
from errands.job import Job, JobState
from errands.scheduling.schedules import ScheduleInfo
from tests.cli.conftest import AppModules, requires_sqlite

WIDE = {"COLUMNS": "250"}  # rich tables wrap to 80 columns when not on a terminal
BERLIN = ZoneInfo("Europe/Berlin")
WITHIN = timedelta(seconds=30)

PLANNER = """
import errands

app = errands.App({url!r})


@app.periodic(cron="0 9 * * 1-5", tz="Europe/Berlin")
@app.task(name="report")
def report() -> None: ...


@app.task(name="ping")
def ping(host: str, port: int = 80) -> None: ...
"""


@dataclass
class Planner:
    """The test app: a weekday-morning report declared in code and a `ping` task."""

    name: str
    module: ModuleType

    @property
    def app(self) -> errands.App:
        """The App the CLI acts on (the same object: the CLI imports the same module)."""
        app: errands.App = self.module.app
        return app

    def cli(self, runner: CliRunner, command: str, *args: str, **kwargs: Any) -> Result:
        """Invoke `errands schedules <command> <this app's target> <args...>`."""
        return runner.invoke(main, ["schedules", command, f"{self.name}:app", *args], **kwargs)

    def listed(self, runner: CliRunner) -> dict[str, dict[str, Any]]:
        """`schedules list --json`, by schedule name."""
        result = self.cli(runner, "list", "--json")
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        return {line["name"]: line for line in lines}

    def info(self, name: str) -> ScheduleInfo:
        """The schedule as Python code sees it."""
        return self.app.schedules.get(name)


@pytest.fixture
def planner(modules: AppModules, broker_url: str) -> Planner:
    """The test app on the memory broker or a SQLite file, imported."""
    name = modules.write(PLANNER.format(url=broker_url))
    return Planner(name, modules.load(name))


def next_weekday_nine_in_berlin(after: datetime) -> datetime:
    """The first 09:00 Berlin time on a Monday to Friday after `after`, found day by day."""
    day = after.astimezone(BERLIN).date()
    while True:
        candidate = datetime(day.year, day.month, day.day, 9, tzinfo=BERLIN)
        if candidate.weekday() < 5 and candidate > after:
            return candidate
        day += timedelta(days=1)


# -- next ------------------------------------------------------------------------------------


def test_next_prints_the_fire_times_in_the_schedules_zone_across_the_dst_change(
    runner: CliRunner, planner: Planner
) -> None:
    result = planner.cli(
        runner, "next", "report", "--after", "2026-03-27T00:00:00Z", "--count", "4"
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "2026-03-27T09:00:00+01:00",
        "2026-03-30T09:00:00+02:00",
        "2026-03-31T09:00:00+02:00",
        "2026-04-01T09:00:00+02:00",
    ]


def test_next_takes_an_after_without_offset_as_utc(runner: CliRunner, planner: Planner) -> None:
    result = planner.cli(runner, "next", "report", "--after", "2026-03-27T08:00:00", "--count", "1")

    assert result.stdout == "2026-03-30T09:00:00+02:00\n"  # 09:00+01:00 is 08:00 UTC: not after


def test_next_of_an_unknown_schedule_exits_1_naming_it(runner: CliRunner, planner: Planner) -> None:
    result = planner.cli(runner, "next", "nightly")

    assert result.exit_code == 1
    assert "no schedule named 'nightly' (known: report)" in result.output


def test_next_with_a_bad_after_exits_2_naming_it(runner: CliRunner, planner: Planner) -> None:
    result = planner.cli(runner, "next", "report", "--after", "friday")

    assert result.exit_code == 2
    assert "'friday' is not an ISO-8601 time" in result.output


# -- list ------------------------------------------------------------------------------------


def test_list_shows_each_schedule_its_policy_and_next_times_in_its_zone_and_utc(
    runner: CliRunner, planner: Planner
) -> None:
    before = datetime.now(UTC)
    result = planner.cli(runner, "list", env=WIDE)
    after = datetime.now(UTC)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "1 schedule" in out
    assert "report" in out
    assert "cron 0 9 * * 1-5 Europe/Berlin" in out
    assert "once" in out
    assert "active" in out
    firsts = {next_weekday_nine_in_berlin(before), next_weekday_nine_in_berlin(after)}
    assert any(
        first.isoformat() in out and first.astimezone(UTC).isoformat() in out for first in firsts
    ), out


def test_list_json_gives_one_parseable_object_per_schedule(
    runner: CliRunner, planner: Planner
) -> None:
    before = datetime.now(UTC)
    [report] = planner.listed(runner).values()

    assert (report["name"], report["task"], report["cron"], report["tz"]) == (
        "report",
        "report",
        "0 9 * * 1-5",
        "Europe/Berlin",
    )
    assert (report["misfire"], report["source"], report["declared_here"]) == ("once", "code", True)
    assert (report["paused"], report["last_slot"], report["skipped"]) == (False, None, [])
    times = [datetime.fromisoformat(t) for t in report["next"]]
    assert len(times) == 3
    assert times == sorted(times)
    assert times[0] >= next_weekday_nine_in_berlin(before)
    for instant in times:
        local = instant.astimezone(BERLIN)
        assert (local.hour, local.minute, local.weekday() < 5) == (9, 0, True)
        assert instant.utcoffset() == local.utcoffset()  # printed in the schedule's zone


# -- add -------------------------------------------------------------------------------------


def test_add_with_every_and_kwargs_stores_a_schedule_that_list_shows(
    runner: CliRunner, planner: Planner
) -> None:
    result = planner.cli(
        runner, "add", "pinger", "ping", "--every", "30s", "--kwargs", '{"host": "a", "port": 8080}'
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("added schedule pinger: every 0:00:30; first run ")
    pinger = planner.listed(runner)["pinger"]
    assert (pinger["task"], pinger["every_seconds"], pinger["cron"]) == ("ping", 30.0, None)
    assert (pinger["source"], pinger["declared_here"], pinger["misfire"]) == ("api", False, "once")
    assert len(pinger["next"]) == 3
    stored = planner.info("pinger").schedule
    assert stored is not None
    assert (stored.args, stored.kwargs) == ((), {"host": "a", "port": 8080})


def test_add_with_cron_a_zone_args_and_a_policy_stores_them(
    runner: CliRunner, planner: Planner
) -> None:
    result = planner.cli(
        runner,
        "add",
        "nightly",
        "ping",
        "--cron",
        "@daily",
        "--tz",
        "Europe/Paris",
        "--args",
        '["b.example"]',
        "--misfire",
        "skip",
        "--misfire-grace",
        "1h30m",
        "--queue",
        "probes",
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("added schedule nightly: cron @daily Europe/Paris; first run ")
    nightly = planner.listed(runner)["nightly"]
    assert (nightly["cron"], nightly["tz"], nightly["misfire"]) == (
        "@daily",
        "Europe/Paris",
        "skip",
    )
    assert all(
        t.endswith("T00:00:00+01:00") or t.endswith("T00:00:00+02:00") for t in nightly["next"]
    )
    stored = planner.info("nightly").schedule
    assert stored is not None
    assert (stored.args, stored.queue) == (("b.example",), "probes")
    assert stored.misfire_grace == timedelta(hours=1, minutes=30)


def test_add_of_a_task_this_app_does_not_register_stores_it_by_name(
    runner: CliRunner, planner: Planner
) -> None:
    result = planner.cli(runner, "add", "remote", "billing.invoice", "--every", "1h")

    assert result.exit_code == 0, result.output
    assert planner.listed(runner)["remote"]["task"] == "billing.invoice"


#: The argument `ping` needs, so a case fails for its own bad value only.
HOST = ["--args", '["a.example"]']


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (["--cron", "0 25 * * *", *HOST], "bad cron expression '0 25 * * *'"),
        (["--cron", "@fortnightly", *HOST], "'@fortnightly': unknown alias"),
        (["--cron", "@daily", "--tz", "Mars/Olympus", *HOST], "unknown time zone 'Mars/Olympus'"),
        (["--every", "5parsecs", *HOST], "'5parsecs' is not a duration"),
        (["--every", "0.5s", *HOST], "every must be at least 1 second"),
        (["--every", "5s", "--kwargs", "{host"], "'{host' is not JSON"),
        (["--every", "5s", "--kwargs", '["a"]'], """'["a"]' is not an object"""),
        (["--every", "5s", "--args", '{"a": 1}'], """'{"a": 1}' is not an array"""),
        (["--every", "5s", "--kwargs", '{"host": "a", "hots": 1}'], "'hots'"),
        (["--every", "5s", "--cron", "@daily", *HOST], "give exactly one of --cron and --every"),
        (HOST, "give exactly one of --cron and --every"),
        (["--cron", "@daily", "--start", "2026-01-01", *HOST], "--start goes with --every"),
        (["--cron", "@daily", "--misfire", "sometimes", *HOST], "'sometimes'"),
    ],
)
def test_add_with_a_bad_value_exits_2_naming_it_and_stores_nothing(
    runner: CliRunner, planner: Planner, options: list[str], complaint: str
) -> None:
    result = planner.cli(runner, "add", "bad", "ping", *options)

    assert result.exit_code == 2, result.output
    assert complaint in result.output
    assert "bad" not in planner.listed(runner)


def test_add_of_a_taken_name_exits_1_naming_it(runner: CliRunner, planner: Planner) -> None:
    first = planner.cli(runner, "add", "pinger", "ping", "--every", "30s", "--args", '["a"]')
    again = planner.cli(runner, "add", "pinger", "ping", "--every", "1m", "--args", '["b"]')
    declared = planner.cli(runner, "add", "report", "ping", "--every", "1m", "--args", '["b"]')

    assert first.exit_code == 0, first.output
    assert again.exit_code == 1
    assert "a schedule named 'pinger' exists already" in again.output
    assert declared.exit_code == 1
    assert "a schedule named 'report' exists already (declared in code)" in declared.output
    assert planner.listed(runner)["pinger"]["every_seconds"] == 30.0


# -- pause, resume, remove -------------------------------------------------------------------


def test_pause_resume_and_remove_say_what_they_did(runner: CliRunner, planner: Planner) -> None:
    planner.cli(runner, "add", "pinger", "ping", "--every", "30s", "--args", '["a"]')

    said = [
        planner.cli(runner, verb, "pinger").stdout
        for verb in ("pause", "pause", "resume", "resume")
    ]
    paused_then = planner.cli(runner, "pause", "pinger")
    listed = planner.listed(runner)
    removed = planner.cli(runner, "remove", "pinger")

    assert said == [
        "paused pinger\n",
        "pinger was paused already\n",
        "resumed pinger\n",
        "pinger was not paused\n",
    ]
    assert paused_then.exit_code == 0
    assert listed["pinger"]["paused"] is True
    assert removed.exit_code == 0
    assert removed.stdout == "removed pinger\n"
    assert "pinger" not in planner.listed(runner)


def test_a_schedule_declared_in_code_can_be_paused_and_resumed(
    runner: CliRunner, planner: Planner
) -> None:
    paused = planner.cli(runner, "pause", "report")
    listed = planner.listed(runner)["report"]
    resumed = planner.cli(runner, "resume", "report")

    assert (paused.exit_code, paused.stdout) == (0, "paused report\n")
    assert listed["paused"] is True
    assert (resumed.exit_code, resumed.stdout) == (0, "resumed report\n")
    assert planner.listed(runner)["report"]["paused"] is False


@pytest.mark.parametrize("verb", ["pause", "resume", "remove"])
def test_an_unknown_name_exits_1_naming_it(runner: CliRunner, planner: Planner, verb: str) -> None:
    result = planner.cli(runner, verb, "nope")

    assert result.exit_code == 1
    assert "no schedule named 'nope'" in result.output


def test_remove_of_a_schedule_declared_in_code_is_refused(
    runner: CliRunner, planner: Planner
) -> None:
    result = planner.cli(runner, "remove", "report")

    assert result.exit_code != 0
    assert "schedule 'report' is declared in code" in result.output
    assert "remove it there" in result.output
    assert "report" in planner.listed(runner)


# -- a real scheduler process ----------------------------------------------------------------

TICKER = """
import errands

app = errands.App({url!r})


@app.task(name="tick")
def tick() -> str:
    return errands.current_job().headers["errands-slot"]
"""


def start(directory: Path, *args: str) -> subprocess.Popen[str]:
    """`python -m errands <args>` in `directory`, its output captured."""
    env = {k: v for k, v in os.environ.items() if k != "ERRANDS_APP"}
    return subprocess.Popen(
        [sys.executable, "-m", "errands", *args],
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, then its exit code and log; fails the test if it does not stop."""
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=WITHIN.total_seconds())
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"the process ignored SIGTERM; its log:\n{stderr}")
    return process.returncode, stderr


def jobs_of(app: errands.App, task: str) -> list[Job]:
    """The jobs of `task` in the App's broker."""
    page: Page = app.portal.call(app.call_broker, lambda b: b.list_jobs(JobQuery(task=task)))
    return page.jobs


def wait_for_jobs(
    app: errands.App, process: subprocess.Popen[str], enough: Any, what: str
) -> list[Job]:
    """Poll the broker until `enough(jobs)` holds; fail (with the process's log) if the
    process exits first or WITHIN passes."""
    deadline = time.monotonic() + WITHIN.total_seconds()
    while True:
        jobs = jobs_of(app, "tick")
        if enough(jobs):
            return jobs
        if process.poll() is not None or time.monotonic() > deadline:
            code, log = stop(process)
            pytest.fail(f"not {what} (exit code {code}); its log:\n{log}")
        time.sleep(0.05)


@pytest.fixture
def ticker(modules: AppModules, tmp_path: Path, runner: CliRunner) -> Planner:
    """An app on a SQLite file with a stored every-second schedule of its `tick` task."""
    name = modules.write(TICKER.format(url=f"sqlite:///{tmp_path / 'jobs.db'}"))
    made = Planner(name, modules.load(name))
    added = made.cli(runner, "add", "beat", "tick", "--every", "1s")
    assert added.exit_code == 0, added.output
    return made


@requires_sqlite
def test_a_scheduler_process_enqueues_each_second_once_and_exits_0_on_sigterm(
    ticker: Planner, tmp_path: Path
) -> None:
    scheduler = start(tmp_path, "scheduler", f"{ticker.name}:app")
    try:
        wait_for_jobs(ticker.app, scheduler, lambda jobs: len(jobs) >= 2, "2 jobs enqueued")
    finally:
        code, log = stop(scheduler)

    jobs = jobs_of(ticker.app, "tick")
    headers = [envelope.decode(bytes(job.payload)).headers for job in jobs]
    slots = [datetime.fromisoformat(h[SLOT_HEADER]) for h in headers]
    assert code == 0, log
    assert len(slots) == len(set(slots)) >= 2
    assert all(slot.microsecond == 0 and slot.tzinfo is not None for slot in slots)
    assert {h[SCHEDULE_HEADER] for h in headers} == {"beat"}
    assert f"scheduler stopped after enqueueing {len(jobs)} jobs" in log


@requires_sqlite
def test_a_worker_with_scheduler_runs_the_scheduled_jobs(ticker: Planner, tmp_path: Path) -> None:
    worker = start(tmp_path, "worker", f"{ticker.name}:app", "--scheduler")
    try:
        done = wait_for_jobs(
            ticker.app,
            worker,
            lambda jobs: sum(job.state is JobState.COMPLETED for job in jobs) >= 2,
            "2 scheduled jobs completed",
        )
    finally:
        code, log = stop(worker)

    completed = [job for job in done if job.state is JobState.COMPLETED]
    for job in completed:  # each ran for its own slot
        slot = envelope.decode(bytes(job.payload)).headers[SLOT_HEADER]
        assert ticker.app.job(job.id).result(timeout=WITHIN) == slot
    assert code == 0, log


def test_add_takes_name_and_task_as_options_too(runner: CliRunner, planner: Planner) -> None:
    result = planner.cli(
        runner,
        "add",
        "--name",
        "pinger",
        "--task",
        "ping",
        "--every",
        "30s",
        "--kwargs",
        '{"host": "db"}',
    )
    assert result.exit_code == 0, result.output
    assert planner.info("pinger").schedule is not None
    missing = planner.cli(runner, "add", "--every", "30s")
    assert missing.exit_code == 2
    assert "missing NAME" in missing.output
