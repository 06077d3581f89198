"""The README's quick start, run as a user would: a script enqueues, a worker process runs it."""

from __future__ import annotations

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
