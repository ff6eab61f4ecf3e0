"""What is wrong with an inventory, and where: file, line and column."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class SourceLocation:
    """A place in an inventory file; ``line`` and ``column`` are 1-based, 0 when unknown."""

    path: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.path
        if not self.column:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One finding; printed as ``file:line:col: error: message`` like a compiler."""

    location: SourceLocation
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.location}: {self.severity}: {self.message}"


class InventoryError(Exception):
    """The inventory cannot be used; ``problems`` lists every error (and warnings) found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        errors = [p for p in self.problems if p.severity == "error"]
        shown = errors or list(self.problems)
        summary = "\n".join(str(p) for p in shown[:20])
        more = f"\n... and {len(shown) - 20} more" if len(shown) > 20 else ""
        super().__init__(f"{len(errors)} error(s) in inventory:\n{summary}{more}")

    @property
    def errors(self) -> tuple[Problem, ...]:
        """Only the problems of severity ``error``."""
        return tuple(p for p in self.problems if p.severity == "error")
