"""The CLI's log output: one line per event on stderr, written in batches.

A worker logs a line per finished job; writing each line on its own cost a write to stderr per
job (a fifth of a busy async worker's loop, measured). Lines are gathered and written at most
every `EVERY` seconds, at once for a WARNING or worse, and at exit.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Final, TextIO

EVERY: Final = 0.2  # seconds a line may wait before it is written
MAX_LINES: Final = 1000


class BatchedStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A stderr (or `stream`) handler that writes gathered lines in one call."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(sys.stderr if stream is None else stream)
        self._lines: list[str] = []
        self._written = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        """Gather the formatted line; write the batch when it is due (runs under the lock)."""
        try:
            self._lines.append(self.format(record))
        except Exception:
            self.handleError(record)
            return
        due = time.monotonic() - self._written >= EVERY or len(self._lines) >= MAX_LINES
        if record.levelno >= logging.WARNING or due:
            self._write()

    def flush(self) -> None:
        """Write whatever is gathered."""
        self.acquire()
        try:
            self._write()
        finally:
            self.release()

    def _write(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        self._written = time.monotonic()


class LineFormatter(logging.Formatter):
    """The default line format, with the time's text made once per second, not per line
    (strftime was the dearest part of a job's log line)."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._second = -1
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """`YYYY-mm-dd HH:MM:SS,mmm` in local time, as logging's default."""
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._text = time.strftime(self.default_time_format, self.converter(record.created))
        return f"{self._text},{int(record.msecs):03d}"


def configure_logging(level: str) -> None:
    """One line per event on stderr, with time, level and logger.

    A record must be cheap: the format names no source file, line, thread or process, and the
    logging HOWTO's optimisations skip collecting them.
    """
    handler = BatchedStderr()
    handler.setFormatter(LineFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(handlers=[handler])
    logging.getLogger().setLevel(level.upper())
    logging._srcfile = None  # documented in the logging HOWTO, "Optimization"
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False


async def flush_logs_every(seconds: float = EVERY) -> None:
    """Write gathered lines on a timer, so a quiet worker's last lines do not wait."""
    while True:
        await asyncio.sleep(seconds)
        for handler in logging.getLogger().handlers:
            handler.flush()
