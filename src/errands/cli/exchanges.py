"""`errands exchanges`: the routing topology stored in the broker: list, declare, bind, unbind.

Every command goes through `app.exchanges`, so the App's own declarations are stored first and
what it shows is what every producer routes by.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import click

from errands.brokers.contract import Binding
from errands.errors import ErrandsError
from errands.routing import EVENTS, KINDS, UNROUTABLE, check_binding

from .jobs import plural, print_table
from .target import Target, target_argument

T = TypeVar("T")


def _call(verb: Callable[[], T]) -> T:
    """Run one call: a bad value is a usage error (exit 2); an unknown name or a broker error
    exits 1 with its message."""
    try:
        return verb()
    except ErrandsError as error:
        raise click.ClickException(str(error)) from None
    except ValueError as error:
        raise click.UsageError(str(error)) from None


@click.group("exchanges")
def exchanges_group() -> None:
    """Exchanges and bindings: where routed jobs and published events go."""


@exchanges_group.command("list")
@target_argument
@click.option("--json", "as_lines", is_flag=True, help="One JSON object per line.")
def list_command(target: Target, as_lines: bool) -> None:
    """Each exchange with its kind and its bindings (key -> queue; for the events exchange,
    pattern -> subscribing task)."""
    topology = _call(target.app.exchanges.topology)
    if as_lines:
        for exchange in topology.exchanges:
            bound = [b for b in topology.bindings if b.exchange == exchange.name]
            click.echo(
                json.dumps(
                    {
                        "name": exchange.name,
                        "kind": exchange.kind,
                        "unroutable": exchange.unroutable,
                        "bindings": [{"key": b.key, "destination": b.destination} for b in bound],
                    }
                )
            )
        return
    rows = []
    for exchange in topology.exchanges:
        bound = [b for b in topology.bindings if b.exchange == exchange.name]
        arrow = "task" if exchange.name == EVENTS else "queue"
        lines = "\n".join(f"{b.key or '(any)'} -> {arrow} {b.destination}" for b in bound)
        rows.append((exchange.name, exchange.kind, exchange.unroutable, lines or "none"))
    columns = ("exchange", "kind", "unroutable", "bindings")
    print_table(plural(len(rows), "exchange"), columns, rows)


@exchanges_group.command("declare")
@target_argument
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), default="direct", show_default=True)
@click.option(
    "--unroutable",
    type=click.Choice(UNROUTABLE),
    default="raise",
    show_default=True,
    help="What a message no binding matches does: raise Unroutable, or drop.",
)
def declare_command(target: Target, name: str, kind: str, unroutable: str) -> None:
    """Store exchange NAME (an existing one takes the new kind)."""
    _call(lambda: target.app.exchanges.declare_exchange(name, kind, unroutable))
    click.echo(f"declared {kind} exchange {name}")


@exchanges_group.command("bind")
@target_argument
@click.argument("exchange")
@click.argument("queue")
@click.argument("key_argument", metavar="[KEY]", required=False)
@click.option("--key", default="", help='The binding key ("eu.*", "#", "invoice").')
def bind_command(
    target: Target, exchange: str, queue: str, key_argument: str | None, key: str
) -> None:
    """Route the messages of EXCHANGE whose key matches KEY (or --key) to QUEUE."""
    key = _key(key_argument, key)
    _call(lambda: target.app.exchanges.bind(exchange, queue, key))
    click.echo(f"bound {queue} to {exchange} with key {key!r}")


@exchanges_group.command("unbind")
@target_argument
@click.argument("exchange")
@click.argument("queue")
@click.argument("key_argument", metavar="[KEY]", required=False)
@click.option("--key", default="", help="The key the binding was made with.")
def unbind_command(
    target: Target, exchange: str, queue: str, key_argument: str | None, key: str
) -> None:
    """Delete the binding of QUEUE to EXCHANGE with KEY (or --key)."""
    key = _key(key_argument, key)
    _call(lambda: check_binding(Binding(exchange, queue, key)))
    if not _call(lambda: target.app.exchanges.unbind(exchange, queue, key)):
        raise click.ClickException(f"no binding of {queue!r} to {exchange!r} with key {key!r}")
    click.echo(f"unbound {queue} from {exchange} (key {key!r})")


def _key(positional: str | None, option: str) -> str:
    """The binding key, given as the KEY argument or --key (not two different ones)."""
    if positional is not None and option and positional != option:
        raise click.UsageError(f"two keys given: {positional!r} and --key {option!r}")
    return positional if positional is not None else option
