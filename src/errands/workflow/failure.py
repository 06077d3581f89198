"""StepFailed: what a dependent receives in place of the result of a dependency that ended
without completing, under the "continue" failure policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StepFailed:
    """A dependency's outcome when it did not complete: its id, its end state ("failed" or
    "cancelled"), the reason stored with it, and its last error's type and message (empty when
    it had none). It travels through the codec as a tagged value, so a step in any pool
    receives it as this type."""

    job_id: str
    state: str
    reason: str = ""
    error_type: str = ""
    message: str = ""

    def to_wire(self) -> dict[str, Any]:
        """The plain JSON object the codec tags."""
        return {
            "job_id": self.job_id,
            "state": self.state,
            "reason": self.reason,
            "error_type": self.error_type,
            "message": self.message,
        }

    @classmethod
    def from_wire(cls, value: dict[str, Any]) -> StepFailed:
        """The inverse of `to_wire`."""
        return cls(**{name: str(value.get(name, "")) for name in cls.__dataclass_fields__})
