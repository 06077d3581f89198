"""Redaction: the values a job page must not show, hidden by the name of the key holding them.

Only keyed values can be matched (keyword arguments, headers, keys of nested mappings in
arguments and results); a positional secret is indistinguishable from any other string, so
tasks should take secrets by keyword, or better, take the name of a secret instead.
"""

from __future__ import annotations

import re
from typing import Any, Final

#: What the dashboard shows in place of a hidden value.
MASK: Final = "••••"
#: The tag key of errands' tagged JSON values (docs/protocol.md), whose names are not secrets.
_TAG: Final = "__errands__"


class Redactor:
    """Replaces the values of keys matching `pattern` (a regular expression) with MASK."""

    def __init__(self, pattern: str) -> None:
        self.rule = re.compile(pattern)

    def hides(self, key: str) -> bool:
        """True if a value under `key` is hidden."""
        return key != _TAG and self.rule.search(key) is not None

    def value(self, value: Any) -> Any:
        """`value` with every matching key's value masked, at any depth."""
        if isinstance(value, dict):
            return self.mapping(value)
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value

    def mapping(self, values: dict[str, Any]) -> dict[str, Any]:
        """A mapping with the values of matching keys masked, and the others redacted within."""
        return {
            key: MASK if self.hides(str(key)) else self.value(item) for key, item in values.items()
        }
