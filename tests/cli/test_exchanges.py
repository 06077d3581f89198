"""`errands exchanges` (list, declare, bind, unbind) on a SQLite file: what it shows and changes
is what every producer routes by."""

from __future__ import annotations

import json

from click.testing import CliRunner

import errands
from errands.cli.main import main
from tests.cli.conftest import AppModules, requires_sqlite

WIDE = {"COLUMNS": "250"}

ROUTER = """
import errands

app = errands.App({url!r})
orders = app.exchange("orders", "topic")
app.bind(orders, "audit", "#")


@app.task(name="ship")
def ship(order_id: int) -> int:
    return order_id


@app.subscribe("order.*")
@app.task(name="mail")
def mail(order_id: int) -> None: ...
"""

pytestmark = requires_sqlite


def router(modules: AppModules) -> tuple[str, errands.App]:
    """The test app on a SQLite file of its own; its name and App."""
    name = modules.write(ROUTER.format(url=f"sqlite:///{modules.directory / 'router.db'}"))
    return name, modules.load(name).app


def test_list_shows_declared_exchanges_bindings_and_subscriptions(
    runner: CliRunner, modules: AppModules
) -> None:
    name, _ = router(modules)
    result = runner.invoke(main, ["exchanges", "list", name], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "orders" in result.stdout
    assert "# -> queue audit" in result.stdout
    assert "order.* -> task mail" in result.stdout


def test_list_json_gives_one_object_per_exchange(runner: CliRunner, modules: AppModules) -> None:
    name, _ = router(modules)
    result = runner.invoke(main, ["exchanges", "list", name, "--json"])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    orders = next(line for line in lines if line["name"] == "orders")
    assert orders == {
        "name": "orders",
        "kind": "topic",
        "unroutable": "raise",
        "bindings": [{"key": "#", "destination": "audit"}],
    }


def test_a_binding_made_from_the_shell_routes_the_apps_jobs(
    runner: CliRunner, modules: AppModules
) -> None:
    name, app = router(modules)
    bound = runner.invoke(main, ["exchanges", "bind", name, "orders", "eu", "--key", "eu.*"])
    assert bound.exit_code == 0, bound.output
    handles = app.registry["ship"].options(exchange="orders", routing_key="eu.rome").enqueue(1)
    assert sorted(h.refresh().queue for h in handles) == ["audit", "eu"]
    unbound = runner.invoke(main, ["exchanges", "unbind", name, "orders", "eu", "--key", "eu.*"])
    assert unbound.exit_code == 0, unbound.output
    handles = app.registry["ship"].options(exchange="orders", routing_key="eu.rome").enqueue(2)
    assert [h.refresh().queue for h in handles] == ["audit"]


def test_declare_makes_an_exchange_that_bind_can_use(
    runner: CliRunner, modules: AppModules
) -> None:
    name, _ = router(modules)
    declared = runner.invoke(main, ["exchanges", "declare", name, "alerts", "--kind", "fanout"])
    assert declared.exit_code == 0, declared.output
    assert runner.invoke(main, ["exchanges", "bind", name, "alerts", "pager"]).exit_code == 0
    listed = runner.invoke(main, ["exchanges", "list", name, "--json"])
    alerts = next(json.loads(x) for x in listed.stdout.splitlines() if '"alerts"' in x)
    assert (alerts["kind"], alerts["bindings"]) == ("fanout", [{"key": "", "destination": "pager"}])


def test_binding_to_an_unknown_exchange_exits_1_naming_it(
    runner: CliRunner, modules: AppModules
) -> None:
    name, _ = router(modules)
    result = runner.invoke(main, ["exchanges", "bind", name, "nope", "q"])
    assert result.exit_code == 1
    assert "'nope'" in result.output


def test_a_bad_kind_exits_2_naming_it(runner: CliRunner, modules: AppModules) -> None:
    name, _ = router(modules)
    result = runner.invoke(main, ["exchanges", "declare", name, "x", "--kind", "weird"])
    assert result.exit_code == 2
    assert "'weird'" in result.output


def test_unbinding_what_is_not_bound_exits_1_saying_so(
    runner: CliRunner, modules: AppModules
) -> None:
    name, _ = router(modules)
    result = runner.invoke(main, ["exchanges", "unbind", name, "orders", "nowhere", "--key", "x"])
    assert result.exit_code == 1
    assert "no binding of 'nowhere'" in result.output


def test_the_key_may_be_given_as_an_argument(runner: CliRunner, modules: AppModules) -> None:
    name, app = router(modules)
    bound = runner.invoke(main, ["exchanges", "bind", name, "orders", "us", "us.*"])
    assert bound.exit_code == 0, bound.output
    handles = app.registry["ship"].options(exchange="orders", routing_key="us.nyc").enqueue(1)
    assert sorted(h.refresh().queue for h in handles) == ["audit", "us"]
    both = runner.invoke(main, ["exchanges", "bind", name, "orders", "us", "a", "--key", "b"])
    assert both.exit_code == 2
