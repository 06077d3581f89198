"""The CLI's log lines: gathered and written in batches, at once for a warning, all at exit."""

from __future__ import annotations

import io
import logging

import pytest

from errands.cli import logs


class Written(io.StringIO):
    """What the handler wrote; `taken()` returns what came since the last call."""

    def taken(self) -> str:
        text = self.getvalue()
        self.seek(0)
        self.truncate()
        return text


@pytest.fixture
def out() -> Written:
    return Written()


@pytest.fixture
def handler(out: Written) -> logging.Handler:
    made = logs.BatchedStderr(out)
    made.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    return made


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("errands.jobs", level, __file__, 1, message, None, None)


def test_info_lines_wait_for_the_batch_and_a_flush_writes_them_in_order(
    handler: logging.Handler, out: Written
) -> None:
    handler.handle(record(logging.INFO, "two"))
    handler.handle(record(logging.INFO, "three"))
    assert out.taken() == ""

    handler.flush()

    assert out.taken() == "INFO two\nINFO three\n"


def test_a_warning_is_written_at_once_with_the_lines_before_it(
    handler: logging.Handler, out: Written
) -> None:
    handler.handle(record(logging.INFO, "two"))

    handler.handle(record(logging.WARNING, "careful"))

    assert out.taken() == "INFO two\nWARNING careful\n"


def test_a_batch_is_written_once_it_is_due(
    handler: logging.Handler, out: Written, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: now[0])
    handler.flush()
    handler.handle(record(logging.INFO, "early"))
    assert out.taken() == ""

    now[0] += logs.EVERY
    handler.handle(record(logging.INFO, "due"))

    assert out.taken() == "INFO early\nINFO due\n"


def test_the_time_of_a_line_reads_as_loggings_default_format_across_seconds() -> None:
    ours = logs.LineFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    default = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for created in (1764568800.001, 1764568800.999, 1764568801.5, 1764568800.25):
        record = logging.LogRecord("errands.jobs", logging.INFO, "", 0, "job %s", ("a",), None)
        record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
        assert ours.format(record) == default.format(record)
