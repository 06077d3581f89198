"""`errands jobs`: list, show and cancel, on the memory broker and on SQLite."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest
from click.testing import CliRunner

import errands
from errands import JobState
from errands.brokers.contract import Broker, ClaimOptions, WorkerInfo
from errands.cli.main import main
from errands.job import Progress
from tests.cli.conftest import AppModules

WIDE = {"COLUMNS": "250"}
LEASE = timedelta(seconds=30)


@pytest.fixture
def shop(modules: AppModules, broker_url: str) -> tuple[str, ModuleType]:
    return modules.shop(broker_url)


def test_list_filters_by_state_and_queue(runner: CliRunner, shop: tuple[str, ModuleType]) -> None:
    name, module = shop
    failed = module.bounce.enqueue(1)
    module.app.run_until_idle(queues=["mail"])
    waiting = module.double.enqueue(2)

    by_state = runner.invoke(main, ["jobs", "list", f"{name}:app", "--state", "failed", "--json"])
    by_queue = runner.invoke(main, ["jobs", "list", f"{name}:app", "--queue", "default", "--json"])
    table = runner.invoke(main, ["jobs", "list", f"{name}:app"], env=WIDE)

    assert [json.loads(line)["id"] for line in by_state.stdout.splitlines()] == [failed.id]
    assert [json.loads(line)["id"] for line in by_queue.stdout.splitlines()] == [waiting.id]
    assert table.exit_code == 0, table.output
    assert "2 jobs" in table.stdout
    assert failed.id in table.stdout
    assert waiting.id in table.stdout


def test_list_filters_by_workflow_and_by_idempotency_key(
    runner: CliRunner, shop: tuple[str, ModuleType]
) -> None:
    name, module = shop
    workflow = errands.group(module.double.call(1), module.double.call(2)).enqueue()
    keyed = module.double.options(idempotency_key="order-42").enqueue(3)
    module.double.enqueue(4)
    target = f"{name}:app"

    by_workflow = runner.invoke(main, ["jobs", "list", target, "--workflow", workflow.id, "--json"])
    by_key = runner.invoke(
        main, ["jobs", "list", target, "--idempotency-key", "order-42", "--json"]
    )

    assert by_workflow.exit_code == 0, by_workflow.output
    listed = [json.loads(line) for line in by_workflow.stdout.splitlines()]
    assert [job["id"] for job in listed] == [job.id for job in workflow.jobs][::-1]
    assert {job["workflow_id"] for job in listed} == {workflow.id}
    [found] = [json.loads(line) for line in by_key.stdout.splitlines()]
    assert (found["id"], found["idempotency_key"]) == (keyed.id, "order-42")


def test_list_and_show_print_a_running_jobs_progress(
    runner: CliRunner, shop: tuple[str, ModuleType]
) -> None:
    name, module = shop
    handle = module.double.enqueue(2)

    async def run_and_report(broker: Broker) -> None:
        [claimed] = await broker.claim(ClaimOptions(["default"], 1, LEASE, "cli-test"))
        await broker.extend(
            [claimed.lease],
            LEASE,
            heartbeat=WorkerInfo("cli-test", "host", 1, ("default",), 1, datetime.now(UTC)),
            progress={claimed.job.id: Progress(0.4, "4 of 10 files")},
        )

    module.app.portal.call(module.app.call_broker, run_and_report)
    listed = runner.invoke(main, ["jobs", "list", f"{name}:app", "--json"])
    table = runner.invoke(main, ["jobs", "list", f"{name}:app"], env=WIDE)
    shown = runner.invoke(main, ["jobs", "show", f"{name}:app", handle.id])

    assert json.loads(listed.stdout)["progress"] == {"fraction": 0.4, "message": "4 of 10 files"}
    assert "40% 4 of 10 files" in table.stdout
    assert "40% 4 of 10 files" in shown.stdout


def test_a_bad_state_is_a_usage_error(runner: CliRunner, shop: tuple[str, ModuleType]) -> None:
    result = runner.invoke(main, ["jobs", "list", f"{shop[0]}:app", "--state", "lost"])

    assert result.exit_code == 2
    assert "'lost'" in result.output


def test_show_prints_every_field_and_each_error_with_its_traceback(
    runner: CliRunner, shop: tuple[str, ModuleType]
) -> None:
    name, module = shop
    handle = module.boom.enqueue(7)
    module.app.run_until_idle()

    result = runner.invoke(main, ["jobs", "show", f"{name}:app", handle.id])

    assert result.exit_code == 0, result.output
    fields = dict(
        line.split(None, 1) for line in result.stdout.split("\n\n")[0].splitlines() if " " in line
    )
    assert fields["id"] == handle.id
    assert fields["state"] == "failed"
    assert fields["fail_reason"] == "error"
    assert fields["task"] == f"{name}.boom"
    assert "attempt 1 (exception" in result.stdout
    assert "ValueError: boom [bold]7[/bold]" in result.stdout
    assert "Traceback (most recent call last)" in result.stdout
    assert 'raise ValueError(f"boom [bold]{n}[/bold]")' in result.stdout


def test_show_of_an_unknown_id_exits_1_naming_it(
    runner: CliRunner, shop: tuple[str, ModuleType]
) -> None:
    shop[1].double.enqueue(1)  # the database exists, the id does not

    result = runner.invoke(main, ["jobs", "show", f"{shop[0]}:app", "nope"])

    assert result.exit_code == 1
    assert "no job with id 'nope'" in result.output


def test_cancel_ends_waiting_jobs_and_reports_finished_ones(
    runner: CliRunner, shop: tuple[str, ModuleType]
) -> None:
    name, module = shop
    done = module.double.enqueue(1)
    module.app.run_until_idle()
    waiting = module.double.enqueue(2)

    result = runner.invoke(main, ["jobs", "cancel", f"{name}:app", waiting.id, done.id])

    assert result.exit_code == 0, result.output
    assert f"{waiting.id}  cancelled" in result.stdout
    assert f"{done.id}  not cancelled: already completed" in result.stdout
    assert waiting.refresh().state is JobState.CANCELLED


def test_cancel_with_an_unknown_id_cancels_nothing(
    runner: CliRunner, shop: tuple[str, ModuleType]
) -> None:
    name, module = shop
    waiting = module.double.enqueue(2)

    result = runner.invoke(main, ["jobs", "cancel", f"{name}:app", waiting.id, "ghost"])

    assert result.exit_code == 1
    assert "no job with id 'ghost'" in result.output
    assert waiting.refresh().state is JobState.AVAILABLE
