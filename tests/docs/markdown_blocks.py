"""Fenced code blocks of a Markdown page, with the markers written just above each fence.

It only reads Markdown; what a block's language and markers mean is decided by page_runner.py.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

#: The markers a fence may carry, as HTML comments on the lines just above it.
MARKERS = frozenset({"continue", "compile-only", "run"})
#: Markers other tests read, passed over here (any other name is a typo, and an error).
OTHERS = {"protocol-sql": "tests/system/test_foreign_producer.py runs the SQL it marks"}

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_MARKER = re.compile(r"^[ \t]*<!--[ \t]*(?P<name>[\w-]+)(?:[ \t]*:[ \t]*(?P<value>.*?))?[ \t]*-->")


@dataclass(frozen=True)
class Block:
    """One fenced code block: its language (first word of the info string), text and markers."""

    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """`page:line`, for failure messages."""
        return f"{self.page.name}:{self.line}"


class MarkdownError(ValueError):
    """A page whose fences or markers cannot be read: an unclosed fence or an unknown marker."""


def blocks_of(page: Path) -> list[Block]:
    """Every fenced code block of `page`, in order."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = _closing_line(lines, index, opening.group("fence"))
        if end is None:
            raise MarkdownError(f"{page.name}:{index + 1}: fence never closed")
        body = textwrap.dedent("\n".join(lines[index + 1 : end]))
        language = (opening.group("info").split() or [""])[0].lower()
        markers = _markers_above(lines, index, page)
        found.append(Block(page, index + 1, language, body + "\n" if body else "", markers))
        index = end + 1
    return found


def _closing_line(lines: list[str], opening: int, fence: str) -> int | None:
    """The line closing the fence opened at `opening`: the same character, at least as long."""
    for index in range(opening + 1, len(lines)):
        stripped = lines[index].strip()
        if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
            return index
    return None


def _markers_above(lines: list[str], fence: int, page: Path) -> dict[str, str]:
    """The `<!-- name -->` or `<!-- name: value -->` comments on the lines right above a fence
    (blank lines between them allowed); an unknown name is an error, not a silent no-op."""
    markers: dict[str, str] = {}
    index = fence - 1
    while index >= 0:
        if not lines[index].strip():
            index -= 1
            continue
        marker = _MARKER.match(lines[index])
        if marker is None:
            break
        name = marker.group("name")
        if name in OTHERS:
            index -= 1
            continue
        if name not in MARKERS:
            known = ", ".join(sorted(MARKERS))
            raise MarkdownError(f"{page.name}:{index + 1}: unknown marker {name!r} ({known})")
        markers[name] = marker.group("value") or ""
        index -= 1
    return markers
