"""Run the chaos suite's full tiers (T1 workers killed, T3 graceful stop) and print each report.

    python benchmarks/chaos.py [-k EXPR] [--seed N] [--verbose]

The same as `pytest tests/system/chaos --run-slow -m slow -s`: T1 streams 10,000 jobs of 5-50 ms
to 4 workers and SIGKILLs 50 of them (or, in the process pool, every other time a child) at
random times, restarting each; T3 streams 2,000 jobs to 4 workers and SIGTERMs 40 of them
mid-job. Each variant prints the checker's report (acknowledged, completed, dead-lettered,
lost, duplicates and the kill each is tied to, recovery latency, integrity_check, wall time)
and fails if a pass condition does not hold. `--seed` replays the random timetable of a run;
`--verbose` lists every recovery (ERRANDS_CHAOS_VERBOSE=1).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="pytest -k expression, e.g. 't1 and process'")
    parser.add_argument("--seed", type=int, help="replay the timetable of a run")
    parser.add_argument("--verbose", action="store_true", help="list every recovery")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.seed is not None:
        env["ERRANDS_CHAOS_SEED"] = str(args.seed)
    if args.verbose:
        env["ERRANDS_CHAOS_VERBOSE"] = "1"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/system/chaos",
        "--run-slow",
        "-m",
        "slow",
        "-s",
        "-q",
        "-p",
        "no:cacheprovider",
        "--durations=0",
    ]
    if args.k:
        command += ["-k", args.k]
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
