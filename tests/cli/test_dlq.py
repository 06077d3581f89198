"""`errands dlq`: list, retry and purge failed jobs, on the memory broker and on SQLite."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner, Result

from errands import JobHandle, JobState
from errands.cli import dlq
from errands.cli.main import main
from tests.cli.conftest import AppModules

WIDE = {"COLUMNS": "250"}  # rich tables wrap to 80 columns when not on a terminal


@dataclass
class Shop:
    """The test app, with jobs that failed in the default and mail queues and one that ran."""

    name: str
    module: ModuleType
    boomed: list[JobHandle[Any]]
    bounced: list[JobHandle[Any]]
    doubled: JobHandle[Any]

    def cli(self, runner: CliRunner, *args: str, **kwargs: Any) -> Result:
        """Invoke `errands <group> <command> <this app's target> <args...>`."""
        group, command, *rest = args
        return runner.invoke(main, [group, command, f"{self.name}:app", *rest], **kwargs)

    def state(self, handle: JobHandle[Any]) -> JobState:
        return handle.refresh().state


@pytest.fixture
def shop(modules: AppModules, broker_url: str) -> Shop:
    name, module = modules.shop(broker_url)
    boomed = module.boom.enqueue_many([(i,) for i in range(3)])
    bounced = module.bounce.enqueue_many([(i,) for i in range(2)])
    doubled = module.double.enqueue(21)
    module.app.run_until_idle(queues=["default", "mail"])
    return Shop(name, module, boomed, bounced, doubled)


def json_lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_list_shows_failed_jobs_newest_first_with_reason_and_last_error(
    runner: CliRunner, shop: Shop
) -> None:
    lines = json_lines(shop.cli(runner, "dlq", "list", "--json"))

    expected = [h.id for h in reversed(shop.boomed + shop.bounced)]
    assert [line["id"] for line in lines] == expected
    first = lines[-1]
    assert (first["task"], first["queue"], first["state"]) == (
        f"{shop.name}.boom",
        "default",
        "failed",
    )
    assert (first["fail_reason"], first["attempt"]) == ("error", 1)
    assert first["last_error"]["type"] == "ValueError"
    assert first["last_error"]["message"] == "boom [bold]0[/bold]"


def test_list_draws_a_table_without_reading_messages_as_markup(
    runner: CliRunner, shop: Shop
) -> None:
    result = shop.cli(runner, "dlq", "list", env=WIDE)

    assert result.exit_code == 0, result.output
    assert "5 failed jobs" in result.stdout
    assert all(h.id in result.stdout for h in shop.boomed + shop.bounced)
    assert shop.doubled.id not in result.stdout
    assert "ValueError: boom [bold]2[/bold]" in result.stdout
    assert "RuntimeError: bounced 1" in result.stdout


def test_list_filters_by_queue_and_limits(runner: CliRunner, shop: Shop) -> None:
    mail = json_lines(shop.cli(runner, "dlq", "list", "--queue", "mail", "--json"))
    newest = json_lines(shop.cli(runner, "dlq", "list", "--limit", "1", "--json"))

    assert [line["id"] for line in mail] == [h.id for h in reversed(shop.bounced)]
    assert [line["id"] for line in newest] == [shop.bounced[-1].id]


def test_retry_by_id_requeues_those_jobs_only(runner: CliRunner, shop: Shop) -> None:
    first, _, third = shop.boomed

    result = shop.cli(runner, "dlq", "retry", first.id, third.id)

    assert result.exit_code == 0, result.output
    assert result.stdout == "requeued 2 jobs\n"
    assert [shop.state(h) for h in shop.boomed] == [
        JobState.AVAILABLE,
        JobState.FAILED,
        JobState.AVAILABLE,
    ]


def test_retry_of_an_unknown_id_names_it_exits_1_and_changes_nothing(
    runner: CliRunner, shop: Shop
) -> None:
    result = shop.cli(runner, "dlq", "retry", shop.boomed[0].id, "no-such-job")

    assert result.exit_code == 1
    assert "no job with id 'no-such-job'" in result.output
    assert shop.state(shop.boomed[0]) is JobState.FAILED


def test_retry_of_a_job_that_did_not_fail_is_refused(runner: CliRunner, shop: Shop) -> None:
    result = shop.cli(runner, "dlq", "retry", shop.doubled.id)

    assert result.exit_code == 1
    assert f"{shop.doubled.id!r} is completed" in result.output


def test_retry_all_requeues_every_failed_job_or_one_queue(runner: CliRunner, shop: Shop) -> None:
    mail = shop.cli(runner, "dlq", "retry", "--all", "--queue", "mail")
    rest = shop.cli(runner, "dlq", "retry", "--all")

    assert (mail.stdout, rest.stdout) == ("requeued 2 jobs\n", "requeued 3 jobs\n")
    assert {shop.state(h) for h in shop.boomed + shop.bounced} == {JobState.AVAILABLE}


def test_retry_all_pages_through_more_failed_jobs_than_one_batch(
    runner: CliRunner, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dlq, "BATCH", 2)  # 5 failed jobs: three pages, three requeues

    result = shop.cli(runner, "dlq", "retry", "--all")

    assert result.stdout == "requeued 5 jobs\n"
    assert {shop.state(h) for h in shop.boomed + shop.bounced} == {JobState.AVAILABLE}


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ((), "give job IDs or --all"),
        (("--all", "x"), "give job IDs or --all"),
        (("x", "--queue", "mail"), "--queue goes with --all"),
    ],
)
def test_retry_needs_ids_or_all(
    runner: CliRunner, shop: Shop, args: tuple[str, ...], complaint: str
) -> None:
    result = shop.cli(runner, "dlq", "retry", *args)

    assert result.exit_code == 2
    assert complaint in result.output


def test_purge_with_yes_deletes_failed_jobs_of_one_queue_or_all(
    runner: CliRunner, shop: Shop
) -> None:
    mail = shop.cli(runner, "dlq", "purge", "--queue", "mail", "--yes")
    rest = shop.cli(runner, "dlq", "purge", "--yes")
    again = shop.cli(runner, "dlq", "purge", "--yes")

    assert mail.stdout == "deleted 2 failed jobs (mail)\n"
    assert rest.stdout == "deleted 3 failed jobs (default)\n"
    assert again.stdout == "no failed jobs\n"
    assert json_lines(shop.cli(runner, "dlq", "list", "--json")) == []
    assert shop.state(shop.doubled) is JobState.COMPLETED


def test_purge_asks_first_and_a_no_keeps_everything(runner: CliRunner, shop: Shop) -> None:
    refused = shop.cli(runner, "dlq", "purge", input="n\n")

    assert refused.exit_code == 1
    assert "Delete 5 failed jobs in default, mail?" in refused.output
    assert len(json_lines(shop.cli(runner, "dlq", "list", "--json"))) == 5

    accepted = shop.cli(runner, "dlq", "purge", input="y\n")

    assert accepted.exit_code == 0
    assert "deleted 5 failed jobs" in accepted.output
