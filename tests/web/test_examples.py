"""The curl and Node clients of examples/ against a real `errands serve`, with a Python worker
for math.add; text.shout is registered nowhere and worked through the pull API."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.web.conftest import ROOT, Processes

EXAMPLES = ROOT / "examples"
TOKEN = "example-token"


@pytest.fixture
def served(processes: Processes, tmp_path: Path) -> dict[str, str]:
    """The examples' App served with a token, and its Python worker; the clients' env."""
    shutil.copy(EXAMPLES / "tasks.py", tmp_path / "tasks.py")
    base = processes.serve("--token", TOKEN, target="tasks:app")
    processes.start("worker", "tasks:app", name="worker")
    return {**os.environ, "ERRANDS_API": base, "ERRANDS_TOKEN": TOKEN}


def run(command: list[str], env: dict[str, str]) -> str:
    """The stdout of a client that must succeed."""
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_client_enqueues_polls_and_works_a_queue(served: dict[str, str]) -> None:
    out = run(["node", str(EXAMPLES / "node" / "client.mjs")], served)
    assert out.splitlines() == ["math.add(2, 3) = 5", "text.shout -> HELLO FROM NODE"]


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_the_curl_scripts_enqueue_poll_and_work_a_queue(served: dict[str, str]) -> None:
    assert run(["bash", str(EXAMPLES / "curl" / "enqueue.sh")], served).strip() == "5"
    worker = subprocess.Popen(
        ["bash", str(EXAMPLES / "curl" / "worker.sh"), "shout"],
        env=served,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group, so its curl goes with it
    )
    try:
        shouted = run(
            ["bash", str(EXAMPLES / "curl" / "enqueue.sh"), "text.shout", '["hi"]', "shout"], served
        )
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait()
    assert shouted.strip() == '"HI"'
