"""Runs the code blocks of one Markdown page in a directory of its own, by language and marker.

The rules are in test_code_blocks.py's docstring; this module applies them and returns what
failed, one message per block, so a page's test names every broken block at once.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; mkdocs brings it

from tests.docs.markdown_blocks import Block, MarkdownError, blocks_of
from tests.docs.shell_blocks import Command, cli_problem, commands_of

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60  # seconds for one program or command; a block that hangs fails, it never blocks

PYTHON = frozenset({"python", "py"})
SHELL = frozenset({"bash", "sh", "shell", "console"})
PARSED = frozenset({"toml", "yaml", "yml", "json", "ini", "dockerfile"})
#: Languages that are not executed, each with the reason: an explicit list, never a silent skip.
SKIPPED = {
    "text": "output and messages shown to the reader",
    "sql": "schema and queries shown for reading; the brokers' tests run the real ones",
    "lua": "Redis scripts shown for reading; the brokers' tests run the real ones",
    "mermaid": "a diagram, drawn by the site",
    "javascript": "a client in another language, shown for reading",
    "http": "a raw HTTP exchange, shown for reading",
    "promql": "Prometheus queries; tests/web checks the metrics they read",
}
_SETTINGS = re.compile(r"(?P<settings>(?:[A-Za-z_]\w*=\S+\s+)*)")
_FILE_HEADER = re.compile(r"^# (?P<name>[\w-]+\.py)\n")
_DOCKER_INSTRUCTIONS = frozenset(
    {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME"}
    | {"USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
)


@dataclass
class Program:
    """Python blocks joined by `<!-- continue -->`; a file when the first line is `# name.py`."""

    blocks: list[Block]

    @property
    def code(self) -> str:
        return "".join(block.code for block in self.blocks)

    @property
    def file(self) -> str | None:
        header = _FILE_HEADER.match(self.blocks[0].code)
        return header.group("name") if header else None


@dataclass
class PageRun:
    """The state of one page's run: its directory, environment, background processes, failures."""

    page: Path
    directory: Path
    env: dict[str, str]
    background: list[tuple[Block, subprocess.Popen[bytes]]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def environment() -> dict[str, str]:
    """The environment of every program: the checkout's `src` first, no ERRANDS_* settings (a
    block must say what it needs), the venv's `errands` on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERRANDS_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_page(page: Path, directory: Path) -> list[str]:
    """Run every block of `page` in `directory` and return the failures (empty when all pass)."""
    try:
        blocks = blocks_of(page)
    except MarkdownError as error:
        return [str(error)]
    run = PageRun(page, directory, environment())
    programs = _programs(blocks, run)
    _write_files(programs, directory)
    used = _files_used_by_run_blocks(blocks, programs)
    last_block_of = {id(program.blocks[-1]): program for program in programs}
    try:
        for block in blocks:
            program = last_block_of.get(id(block))
            if program is not None and program.file not in used:
                _run_program(program, run)
            elif block.language in SHELL:
                _shell(block, run)
            elif block.language in PARSED:
                _parse(block, run)
            elif block.language not in PYTHON and block.language not in SKIPPED:
                run.failures.append(f"{block.where}: no rule for language {block.language!r}")
    finally:
        _stop_background(run)
    return run.failures


def _programs(blocks: list[Block], run: PageRun) -> list[Program]:
    """Group python blocks into programs; compile-only blocks are compiled here and left out."""
    programs: list[Program] = []
    for block in blocks:
        if block.language not in PYTHON:
            continue
        if "compile-only" in block.markers:
            _compile_only(block, run)
        elif "continue" in block.markers and programs:
            programs[-1].blocks.append(block)
        elif "continue" in block.markers:
            run.failures.append(f"{block.where}: `continue` with no python block before it")
        else:
            programs.append(Program([block]))
    return programs


def _compile_only(block: Block, run: PageRun) -> None:
    if not block.markers["compile-only"]:
        run.failures.append(f"{block.where}: compile-only needs a reason (compile-only: why)")
    try:
        compile(block.code, block.where, "exec")
    except SyntaxError as error:
        run.failures.append(f"{block.where}: does not compile: {error}")


def _write_files(programs: list[Program], directory: Path) -> None:
    for program in programs:
        if program.file is not None:
            (directory / program.file).write_text(program.code)


def _files_used_by_run_blocks(blocks: list[Block], programs: list[Program]) -> set[str | None]:
    """The `# name.py` files a `<!-- run -->` shell block mentions (`name.py` or `name:`): that
    block runs them, so they are not run again as programs."""
    shell = " ".join(b.code for b in blocks if b.language in SHELL and "run" in b.markers)
    used: set[str | None] = set()
    for program in programs:
        name = program.file
        if name and re.search(rf"\b{re.escape(name)}\b|\b{re.escape(name[:-3])}:", shell):
            used.add(name)
    return used


def _run_program(program: Program, run: PageRun) -> None:
    first = program.blocks[0]
    script = program.file or f"_block_{first.line}.py"
    (run.directory / script).write_text(program.code)
    _finished([sys.executable, script], f"{first.where}: python", run)


def _shell(block: Block, run: PageRun) -> None:
    """Every shell block: bash -n, then each `errands` call checked against the CLI; a block
    marked `<!-- run -->` is then run, command by command."""
    commands = commands_of(block.code, console=block.language == "console")
    script = "\n".join(command.text for command in commands)
    syntax = subprocess.run(["bash", "-n"], input=script.encode(), capture_output=True)
    if syntax.returncode != 0:
        run.failures.append(f"{block.where}: bash -n: {syntax.stderr.decode().strip()}")
        return
    for command in commands:
        for args in command.errands_calls():
            problem = cli_problem(args)
            if problem is not None:
                run.failures.append(f"{block.where}: `errands {shlex.join(args)}`: {problem}")
    if "run" in block.markers:
        for command in commands:
            _run_command(block, command, run)


def _run_command(block: Block, command: Command, run: PageRun) -> None:
    if command.long_running:
        process = subprocess.Popen(
            ["bash", "-c", _exec(command.text)],
            cwd=run.directory,
            env=run.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        run.background.append((block, process))
        return
    done = _finished(
        ["bash", "-o", "pipefail", "-c", command.text], f"{block.where}: `{command.text}`", run
    )
    if done is None:
        return
    missing = [line for line in command.expected if line not in done.stdout.decode()]
    if missing:
        run.failures.append(
            f"{block.where}: `{command.text}` printed {done.stdout.decode()!r}, without {missing!r}"
        )


def _exec(line: str) -> str:
    """The line with `exec` in front of its command (after any `VAR=value` words), so that the
    SIGTERM at the end of the page reaches the command itself, not a shell."""
    settings = _SETTINGS.match(line)
    assert settings is not None  # the pattern matches any line, with or without settings
    return f"{settings.group('settings')}exec {line[settings.end() :]}"


def _stop_background(run: PageRun) -> None:
    """SIGTERM every background command; each must stop cleanly (exit 0) within the deadline."""
    for _, process in run.background:
        process.send_signal(signal.SIGTERM)
    for block, process in run.background:
        try:
            code = process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if code != 0:
            stderr = process.stderr.read().decode() if process.stderr else ""
            run.failures.append(
                f"{block.where}: background command exited {code}:\n{stderr[-2000:]}"
            )


def _parse(block: Block, run: PageRun) -> None:
    """toml, yaml, json and ini blocks must parse; a Dockerfile's lines must be instructions."""
    try:
        if block.language == "toml":
            tomllib.loads(block.code)
        elif block.language in {"yaml", "yml"}:
            yaml.safe_load(block.code)
        elif block.language == "json":
            json.loads(block.code)
        elif block.language == "ini":
            configparser.ConfigParser(interpolation=None, strict=False).read_string(block.code)
        else:
            _check_dockerfile(block.code)
    except (ValueError, yaml.YAMLError, configparser.Error) as error:
        run.failures.append(f"{block.where}: {block.language} does not parse: {error}")


def _check_dockerfile(code: str) -> None:
    continued = False
    for line in code.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not continued:
            word = stripped.split()[0]
            if word.upper() not in _DOCKER_INSTRUCTIONS:
                raise ValueError(f"{word!r} is not a Dockerfile instruction")
        continued = stripped.endswith("\\") or (continued and not stripped)


def _finished(
    argv: list[str], what: str, run: PageRun
) -> subprocess.CompletedProcess[bytes] | None:
    """Run `argv` in the page's directory; the finished process, or None with a failure
    recorded when it timed out or exited non-zero."""
    try:
        done = subprocess.run(
            argv, cwd=run.directory, env=run.env, capture_output=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        run.failures.append(f"{what} did not end within {TIMEOUT} s")
        return None
    if done.returncode != 0:
        run.failures.append(f"{what} exited {done.returncode}:\n{_tail(done)}")
        return None
    return done


def _tail(done: subprocess.CompletedProcess[bytes]) -> str:
    return (done.stdout.decode() + done.stderr.decode())[-3000:]
