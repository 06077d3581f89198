"""TARGET: find the App a command acts on from "module:attr", the way uvicorn and celery do.

The module is imported with the app directory (the current one by default) first on sys.path;
a target that cannot be loaded is a usage error (exit 2) naming it. Commands that act on stored
jobs take a TARGET that must already have its database. Running the App is left to the commands.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from errands.app import App

#: The attribute looked up when a target names only a module ("shop" means "shop:app").
DEFAULT_ATTR = "app"


@dataclass(frozen=True, slots=True)
class Target:
    """A loaded App and the "module:attr" it was found at (for process-pool children)."""

    ref: str
    app: App


if TYPE_CHECKING:
    _TargetType = click.ParamType[Target]
else:  # click < 8.4 has no generic ParamType to subscript at run time
    _TargetType = click.ParamType


class AppTarget(_TargetType):
    """A click type that turns "module:attr" into a Target, or fails naming the bad value.

    With `stored=True` the App's jobs must already be stored (see `require_database`).
    """

    name = "module:attr"

    def __init__(self, *, stored: bool = False) -> None:
        self.stored = stored

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Target:
        """Load the target; every failure is a BadParameter (click exits 2 with one line)."""
        if isinstance(value, Target):
            return value
        try:
            target = load_target(str(value), app_dir=_app_dir(ctx))
        except TargetError as error:
            self.fail(str(error), param, ctx)
        if self.stored:
            require_database(target.app)
        return target


class TargetError(Exception):
    """A target that does not name an importable App; the message names the target."""


def load_target(ref: str, *, app_dir: str = ".") -> Target:
    """Import `ref` ("module:attr", or "module" for "module:app") and return its App."""
    module_name, attr = split_ref(ref)
    module = _import(module_name, ref, app_dir)
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            raise TargetError(f"{ref!r}: module {module_name!r} has no attribute {attr!r}")
        value = getattr(value, part)
    if not isinstance(value, App):
        kind = type(value).__name__
        raise TargetError(f"{ref!r} is a {kind}, not an errands.App")
    return Target(f"{module_name}:{attr}", value)


def split_ref(ref: str) -> tuple[str, str]:
    """("module", "attr") from "module:attr"; a bare module means its `app` attribute."""
    module_name, colon, attr = ref.strip().partition(":")
    if not colon:
        attr = DEFAULT_ATTR
    parts = [*module_name.split("."), *attr.split(".")]
    if not all(part.isidentifier() for part in parts):
        raise TargetError(f"{ref!r} does not look like 'module:attr' (e.g. 'shop:app')")
    return module_name, attr


def _import(module_name: str, ref: str, app_dir: str) -> Any:
    directory = os.path.abspath(app_dir)
    # Like uvicorn's --app-dir: the user's module wins over an installed one of the same name.
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name or module_name.startswith(f"{error.name}."):
            raise TargetError(
                f"{ref!r}: no module named {error.name!r} in {directory} or on sys.path"
            ) from None
        raise TargetError(f"{ref!r}: importing {module_name!r} failed: {_brief(error)}") from None
    except Exception as error:  # the user's module raised: report it in one line, no traceback
        raise TargetError(f"{ref!r}: importing {module_name!r} failed: {_brief(error)}") from None


def require_database(app: App) -> None:
    """Exit 1 naming the absolute path when the App's SQLite file does not exist, instead of
    opening it (which creates an empty database): a relative `sqlite:///errands.db` resolves
    against the current directory, and from the wrong one every command would find no jobs."""
    from errands.brokers.sqlite.broker import SQLiteBroker  # only SQLite files need the check

    try:
        broker = app.broker
    except ValueError as error:  # a malformed URL: one line, like every other CLI error
        raise click.ClickException(str(error)) from None
    if isinstance(broker, SQLiteBroker) and not broker.path.exists():
        why = (
            ""
            if broker.path.is_absolute()
            else " (a relative path is taken from the current directory)"
        )
        raise click.ClickException(f"no errands database at {broker.location}{why}")


def _brief(error: BaseException) -> str:
    """ "Type: message (file:line)" of where the error was raised: the last line outside errands
    itself, since an error errands raises (a bad broker URL) is the user's line to fix."""
    frames = traceback.extract_tb(error.__traceback__)
    own = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    theirs = [frame for frame in frames if not frame.filename.startswith(own + os.sep)]
    last = (theirs or frames)[-1:]
    where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(error).__name__}: {error}{where}"


def _app_dir(ctx: click.Context | None) -> str:
    root = ctx.find_root() if ctx is not None else None
    app_dir = root.params.get("app_dir") if root is not None else None
    return str(app_dir) if app_dir else "."


#: The TARGET argument every command shares; ERRANDS_APP supplies it when omitted.
target_argument = click.argument("target", type=AppTarget(), envvar="ERRANDS_APP")
#: TARGET for the commands that act on stored jobs (`errands jobs`, `errands dlq`): never
#: creates a database.
stored_target_argument = click.argument("target", type=AppTarget(stored=True), envvar="ERRANDS_APP")
