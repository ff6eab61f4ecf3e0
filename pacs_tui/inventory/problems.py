"""What is wrong with an inventory, and where: file, line and key path."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pacs_tui.input_file import InputFileError


@dataclass(frozen=True)
class Problem:
    """One mistake, printed as ``FILE:LINE: KEY: message``.

    ``key`` is a path such as ``servers[3].bmc.port``; ``line`` is 1-based,
    0 when the problem concerns the whole file (then it prints ``FILE: ...``).
    ``column`` (1-based, in characters) is set for byte-level problems such as
    a byte that is not UTF-8; it prints as ``FILE:LINE:COLUMN:``.
    """

    file: Path
    line: int
    key: str
    message: str
    column: int = 0

    @classmethod
    def of_file(cls, exc: InputFileError) -> Problem:
        """The problem an unreadable or undecodable file is."""
        return cls(exc.path, exc.line, "", exc.reason, exc.column)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else f"{self.file}"
        if self.line and self.column:
            where += f":{self.column}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class InventoryError(Exception):
    """The inventory cannot be used; ``problems`` lists every mistake found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        shown = "\n".join(str(p) for p in self.problems[:20])
        more = f"\n... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{len(self.problems)} problem(s) in inventory:\n{shown}{more}")
