"""TARGET loading: "module:attr" imported from the app directory, or a one-line usage error."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import errands
from errands.cli.main import main
from errands.cli.target import TargetError, load_target, split_ref
from tests.cli.conftest import AppModules, requires_sqlite

APP = "import errands\napp = errands.App('memory://')\n"


def test_a_module_and_attribute_load_the_app_found_there(modules: AppModules) -> None:
    name = modules.write(APP + "other = errands.App('memory://')\n")

    target = load_target(f"{name}:other")

    assert target.ref == f"{name}:other"
    assert target.app is modules.load(name).other


def test_a_bare_module_means_its_app_attribute(modules: AppModules) -> None:
    name = modules.write(APP)

    target = load_target(name)

    assert target.ref == f"{name}:app"
    assert isinstance(target.app, errands.App)


def test_a_dotted_attribute_is_followed(modules: AppModules) -> None:
    name = modules.write(APP + "class Holder:\n    app = app\n")

    assert load_target(f"{name}:Holder.app").app is modules.load(name).app


@pytest.mark.parametrize("ref", ["", ":app", "shop:", "shop:app:x", "a b:app", "shop:1app"])
def test_a_malformed_target_is_refused_by_name(ref: str) -> None:
    with pytest.raises(TargetError, match="does not look like 'module:attr'") as caught:
        split_ref(ref)
    assert repr(ref) in str(caught.value)


def test_a_missing_module_names_itself_and_the_directory(modules: AppModules) -> None:
    with pytest.raises(TargetError) as caught:
        load_target("no_such_module_here:app")

    assert "no module named 'no_such_module_here'" in str(caught.value)
    assert str(modules.directory) in str(caught.value)


def test_a_module_whose_own_import_fails_reports_that_error(modules: AppModules) -> None:
    name = modules.write("import errands\nimport not_installed_anywhere\napp = None\n")

    with pytest.raises(TargetError) as caught:
        load_target(f"{name}:app")

    message = str(caught.value)
    assert f"importing {name!r} failed: ModuleNotFoundError" in message
    assert "not_installed_anywhere" in message
    assert f"{name}.py:2" in message  # where it was raised


def test_a_module_that_raises_is_reported_in_one_line(modules: AppModules) -> None:
    name = modules.write("x = 1 / 0\n")

    with pytest.raises(TargetError, match="ZeroDivisionError: division by zero") as caught:
        load_target(name)
    assert "\n" not in str(caught.value)


def test_a_missing_attribute_is_named(modules: AppModules) -> None:
    name = modules.write(APP)

    with pytest.raises(TargetError, match=f"module '{name}' has no attribute 'nope'"):
        load_target(f"{name}:nope")


def test_something_that_is_not_an_app_is_refused(modules: AppModules) -> None:
    name = modules.write(APP + "def helper() -> None: ...\n")

    with pytest.raises(TargetError, match=r"is a function, not an errands\.App"):
        load_target(f"{name}:helper")


def test_the_cli_exits_2_naming_an_unimportable_target(
    runner: CliRunner, modules: AppModules
) -> None:
    result = runner.invoke(main, ["dlq", "list", "no_such_module_here:app"])

    assert result.exit_code == 2
    assert "Invalid value for 'TARGET'" in result.output
    assert "'no_such_module_here:app'" in result.output
    assert "Traceback" not in result.output


def test_errands_app_supplies_a_missing_target(
    runner: CliRunner, modules: AppModules, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, _ = modules.shop("memory://")
    monkeypatch.setenv("ERRANDS_APP", f"{name}:app")

    result = runner.invoke(main, ["dlq", "list", "--json"])

    assert result.exit_code == 0, result.output
    assert result.output == ""  # no failed jobs on a new memory broker


def test_app_dir_puts_another_directory_first_on_sys_path(
    runner: CliRunner, modules: AppModules, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "far_away_app.py").write_text(APP)
    modules.names.append("far_away_app")  # removed from sys.modules afterwards

    missing = runner.invoke(main, ["jobs", "list", "far_away_app:app"])
    found = runner.invoke(main, ["--app-dir", str(elsewhere), "jobs", "list", "far_away_app:app"])

    assert missing.exit_code == 2
    assert found.exit_code == 0, found.output


@requires_sqlite
@pytest.mark.parametrize(
    "command",
    [
        ["jobs", "list"],
        ["jobs", "show", "some-id"],
        ["jobs", "cancel", "some-id"],
        ["dlq", "list"],
        ["dlq", "retry", "--all"],
        ["dlq", "purge", "--yes"],
    ],
    ids=" ".join,
)
def test_a_missing_database_exits_1_naming_its_absolute_path_and_is_not_created(
    runner: CliRunner, modules: AppModules, tmp_path: Path, command: list[str]
) -> None:
    name, _ = modules.shop("sqlite:///errands.db")  # relative: resolved in the current directory
    expected = (tmp_path / "errands.db").resolve()

    result = runner.invoke(main, [*command[:2], f"{name}:app", *command[2:]])

    assert result.exit_code == 1
    assert f"Error: no errands database at {expected}" in result.output
    assert list(tmp_path.glob("errands.db*")) == []
