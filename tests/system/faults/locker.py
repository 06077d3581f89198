"""Holds SQLite's write lock from outside errands: `BEGIN EXCLUSIVE`, wait, `COMMIT`.

Run as `python -m tests.system.faults.locker DB SECONDS MARKS`; appends `locked <t>` to MARKS
once it holds the lock and `released <t>` after the COMMIT (t: system-wide monotonic seconds).
"""

from __future__ import annotations

import sqlite3
import sys
import time

from tests.system.faults.trail import append


def main(path: str, seconds: float, marks: str) -> None:
    connection = sqlite3.connect(path, timeout=60, isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    append(marks, f"locked {time.monotonic():.6f}")
    time.sleep(seconds)  # holding the lock for this long is the fault itself
    connection.execute("COMMIT")
    append(marks, f"released {time.monotonic():.6f}")
    connection.close()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3])
