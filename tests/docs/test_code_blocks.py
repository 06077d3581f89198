"""Every fenced code block in README.md and docs/**/*.md is executed or checked: one test per
page, in a fresh directory of its own, so a failure names the page and each broken block.

How each language is treated:

- ``python``: run with the checkout's ``src`` on PYTHONPATH, no ``ERRANDS_*`` variables, in
  the page's directory, within 60 s; it must exit 0. Blocks that need a server use the ones
  at 127.0.0.1 (Redis 6379, PostgreSQL 5432 database ``test``, RabbitMQ 5672).
- ``bash``, ``sh``, ``shell``, ``console`` (in ``console`` only ``$ `` lines are commands):
  ``bash -n`` checks the syntax, and every ``errands ...`` call in them is checked against
  the real CLI: the subcommand and every option must exist (click parses it with ``--help``
  appended, so nothing runs). ``pip install``, ``systemctl``, ``docker`` and the like stop
  there. A block marked ``<!-- run -->`` is also run, command by command, in the page's
  directory: ``errands worker|scheduler|serve`` lines start in the background and are stopped
  with SIGTERM at the end of the page (they must then exit 0); every other command must exit
  0 and print what the page shows: the TEXT of a trailing ``# -> TEXT`` comment, or in a
  ``console`` block each output line under the command.
- ``toml``, ``yaml``, ``json``, ``ini`` are parsed (ini as systemd and supervisor read it:
  no interpolation, repeated keys allowed); a ``dockerfile`` must be made of instructions.
- ``<!-- protocol-sql: NAME -->`` marks SQL that tests/system/test_foreign_producer.py runs;
  it is passed over here. Any other ``<!-- name -->`` right above a fence is an error (a typo).
- Languages listed in ``page_runner.SKIPPED`` (``text``, ``sql``, ``lua``, ``mermaid``, ...)
  are not executed, each for the reason given there. Any other language fails the test.

Markers, HTML comments on the lines right above a fence (invisible on the site and GitHub):

- ``<!-- continue -->``: this python block continues the previous python block of the page;
  they run as one program (a fragment that needs the ``app`` and tasks defined above).
- A python block whose first line is ``# name.py`` is saved as that file in the page's
  directory before anything runs, with its continuations. A ``<!-- run -->`` shell block
  that mentions it (``name.py`` or ``name:app``) runs it; otherwise it runs as a program at
  its own place.
- ``<!-- compile-only: reason -->``: a python block that cannot run alone (a framework's
  settings fragment) is only compiled. The reason is required; keep these rare.
- ``<!-- run -->``: see the shell rules above.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.page_runner import ROOT, run_page


def pages_with_blocks() -> list[Path]:
    """README.md and every docs page that holds a fenced code block."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [page for page in pages if "```" in page.read_text() or "~~~" in page.read_text()]


@pytest.mark.parametrize("page", pages_with_blocks(), ids=lambda page: str(page.relative_to(ROOT)))
def test_every_code_block_of_the_page_runs(page: Path, tmp_path: Path) -> None:
    failures = run_page(page, tmp_path)
    assert not failures, "\n\n".join(failures)
