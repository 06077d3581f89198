"""The README's quick start, run as a user would: a script enqueues, a worker process runs it."""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"```python\n# shop\.py\n(.*?)```", readme, re.S)
    assert found, "the README lost its quick start"
    return found.group(1)


def test_the_readme_quick_start_prints_the_receipt(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(quick_start())
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERRANDS_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    worker = subprocess.Popen(
        [sys.executable, "-m", "errands", "worker", "shop:app", "--queues", "mail,default"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # The script itself waits for the worker (job.result with a 10 s timeout).
        script = subprocess.run(
            [sys.executable, "shop.py"], cwd=tmp_path, env=env, capture_output=True, timeout=60
        )
        assert script.returncode == 0, script.stderr.decode()
        assert script.stdout.decode().strip() == "receipt for order 42 sent"
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


def test_the_readme_routing_example_routes_and_publishes(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"```python\n# orders\.py\n(.*?)```", readme, re.S)
    assert found, "the README lost its routing example"
    (tmp_path / "orders.py").write_text(found.group(1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERRANDS_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    script = subprocess.run(
        [sys.executable, "orders.py"], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    assert script.returncode == 0, script.stderr.decode()
    lines = script.stdout.decode().splitlines()
    assert lines[0] == "['audit', 'orders-eu']"
    assert lines[1] == "['orders.email_customer', 'orders.update_stock']"
    assert sorted(ast.literal_eval(lines[2])) == sorted(  # results, in the handles' order
        ["order 42 packed", "order 42 packed", "mail about 42", "stock for 42"]
    )
