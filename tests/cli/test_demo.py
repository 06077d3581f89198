"""`errands demo`: the treasure hunt finds the one file holding the word, from a clean start."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from errands.demo import WORD, file_name, search_files, write_files
from tests.brokers.registry import REGISTRY
from tests.cli.conftest import requires_sqlite
from tests.conftest import require_service

FOUND = re.compile(r"^found the treasure in (?P<path>\S+)$", re.MULTILINE)
JOBS = re.compile(
    r"(?P<completed>\d+) of (?P<jobs>\d+) jobs completed, (?P<cancelled>\d+) cancelled"
)


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # TMPDIR keeps the demo's temporary directory inside this test's own.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "errands", "demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def holders(directory: Path) -> list[Path]:
    return [path for path in sorted(directory.iterdir()) if WORD in path.read_text()]


@requires_sqlite
def test_the_demo_prints_the_one_file_that_holds_the_treasure(tmp_path: Path) -> None:
    done = run_demo(tmp_path, "--files", "2000", "--chunk", "100", "--keep", "--seed", "5")

    assert done.returncode == 0, done.stdout + done.stderr
    found = FOUND.search(done.stdout)
    assert found, done.stdout
    path = Path(found["path"])
    assert path.is_relative_to(tmp_path)
    assert WORD in path.read_text()
    assert holders(path.parent) == [path]  # and no other file does
    assert (path.parent.parent / "errands-demo.db").exists()  # kept, with its SQLite broker
    tally = JOBS.search(done.stdout)
    assert tally, done.stdout
    assert tally["jobs"] == "20"
    assert int(tally["completed"]) + int(tally["cancelled"]) == 20


@requires_sqlite
def test_the_demo_removes_its_directory_unless_kept(tmp_path: Path) -> None:
    done = run_demo(tmp_path, "--files", "300", "--chunk", "10")

    assert done.returncode == 0, done.stdout + done.stderr
    assert FOUND.search(done.stdout), done.stdout
    # Only the demo's own directory is checked: the SQLite broker's wake-up sockets live in
    # an errands-wake-* directory of TMPDIR that outlives the database.
    assert list(tmp_path.glob("errands-demo-*")) == []


def test_a_bad_option_exits_2(tmp_path: Path) -> None:
    done = run_demo(tmp_path, "--chunk", "0")

    assert done.returncode == 2
    assert "Invalid value for '--chunk'" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_files_and_the_treasure_follow_the_seed(tmp_path: Path) -> None:
    first = write_files(tmp_path / "a", 50, seed=9, on_progress=lambda *_: None)
    again = write_files(tmp_path / "b", 50, seed=9, on_progress=lambda *_: None)

    assert first.name == again.name
    assert holders(tmp_path / "a") == [first]
    for name in (file_name(i) for i in range(50)):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


def test_search_returns_the_path_only_from_the_range_holding_it(tmp_path: Path) -> None:
    planted = write_files(tmp_path, 30, seed=1, on_progress=lambda *_: None)
    index = int(planted.stem.split("-")[1])

    assert search_files(str(tmp_path), 0, 30) == str(planted)
    assert search_files(str(tmp_path), index, index + 1) == str(planted)
    assert search_files(str(tmp_path), index + 1, 30) is None


@pytest.mark.parametrize("count", [1, 2])
def test_even_the_smallest_hunt_plants_exactly_one_treasure(tmp_path: Path, count: int) -> None:
    write_files(tmp_path, count, seed=3, on_progress=lambda *_: None)

    assert len(holders(tmp_path)) == 1


@pytest.mark.parametrize("name", ["redis", "postgres"])
def test_the_demo_runs_on_a_server_broker_with_broker(tmp_path: Path, name: str) -> None:
    entry = REGISTRY[name]
    why = entry.unavailable()
    require_service(name, why is None, why or "")
    url = entry.url(tmp_path)
    try:
        done = run_demo(tmp_path, "--files", "1000", "--chunk", "50", "--broker", url)
    finally:
        entry.cleanup(url)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"broker  {url}" in done.stdout
    found = FOUND.search(done.stdout)
    assert found, done.stdout
    tally = JOBS.search(done.stdout)
    assert tally, done.stdout
    assert int(tally["completed"]) + int(tally["cancelled"]) == int(tally["jobs"]) == 20


def test_a_broker_url_nothing_handles_exits_2(tmp_path: Path) -> None:
    done = run_demo(tmp_path, "--broker", "bogus://nowhere")

    assert done.returncode == 2
    assert "bogus://nowhere" in done.stderr
