"""Shell blocks of the docs: their commands, and a check of every `errands` command line
against the real CLI (subcommand and option names), without running it.

Running a block is page_runner.py's; this module only reads and checks command lines.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass

import click

from errands.cli.main import main as errands_cli

#: Subcommands that serve until stopped: a run block starts them in the background.
LONG_RUNNING = frozenset({"worker", "scheduler", "serve"})

_OPERATORS = frozenset({"&&", "||", ";", "|", "&", "(", ")"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_EXPECTED = re.compile(r"#\s*->\s*(?P<text>.+?)\s*$")


@dataclass(frozen=True)
class Command:
    """One logical command line (continuation lines joined) and the output the page promises:
    the text after `# -> ` in its comment, or in a `console` block the lines shown under it.
    Each must be in its stdout."""

    text: str
    expected: tuple[str, ...]

    def errands_calls(self) -> list[list[str]]:
        """The argument lists of each `errands ...` (or `python -m errands ...`) in the line."""
        lexer = shlex.shlex(self.text, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        calls: list[list[str]] = []
        segment: list[str] = []
        for token in [*lexer, ";"]:
            if token in _OPERATORS:
                calls.extend(_errands_args(segment))
                segment = []
            else:
                segment.append(token)
        return calls

    @property
    def long_running(self) -> bool:
        """Whether the line is one `errands worker|scheduler|serve` that runs until stopped."""
        calls = self.errands_calls()
        return len(calls) == 1 and bool(calls[0]) and calls[0][0] in LONG_RUNNING


def _errands_args(segment: list[str]) -> list[list[str]]:
    words = [word for word in segment if not _ASSIGNMENT.match(word)] if segment else []
    if words[:1] == ["errands"]:
        return [words[1:]]
    if len(words) >= 3 and words[1:3] == ["-m", "errands"] and words[0].startswith("python"):
        return [words[3:]]
    return []


def commands_of(code: str, console: bool) -> list[Command]:
    """The logical commands of a block; in a `console` block only the `$ ` lines (the rest is
    output shown to the reader)."""
    commands: list[Command] = []
    pending = ""
    for raw in code.splitlines():
        line = raw
        if not pending and console:
            if not line.startswith("$ "):
                if commands and line.strip():
                    last = commands[-1]
                    commands[-1] = Command(last.text, (*last.expected, line.strip()))
                continue
            line = line[2:]
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        if _open_quote(pending + line):
            pending += line + "\n"
            continue
        text = (pending + line).strip()
        pending = ""
        if text and not text.startswith("#"):
            expected = _EXPECTED.search(text)
            commands.append(Command(text, (expected.group("text"),) if expected else ()))
    return commands


def _open_quote(text: str) -> bool:
    """Whether a quote opened in `text` is still open: the command goes on on the next line."""
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return True
    return False


def cli_problem(args: list[str]) -> str | None:
    """None if `errands ARGS` names a real subcommand with real options, else click's message.

    `--help` is appended: click parses every name first (an unknown one is a usage error) and
    then prints the help instead of running, so nothing is opened or started."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            errands_cli.main(args=[*args, "--help"], prog_name="errands", standalone_mode=False)
    except click.UsageError as error:
        return error.format_message()
    return None
