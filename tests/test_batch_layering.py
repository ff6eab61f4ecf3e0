"""The batch package never imports the session: session → batch, one way.

The runner once imported ``Session`` under ``TYPE_CHECKING`` while the session
imported the runner: a cycle that type checkers and import-linter both see.
The runner now needs only a ``WriteGuard`` protocol.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from pacs_tui.batch.runner import WriteGuard
from pacs_tui.session import Session

BATCH = Path(__file__).resolve().parent.parent / "pacs_tui" / "batch"


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (TYPE_CHECKING blocks included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_batch_module_imports_the_session() -> None:
    offenders = {
        path.name: sorted(m for m in imported_modules(path) if m.startswith("pacs_tui.session"))
        for path in sorted(BATCH.glob("*.py"))
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}


def test_the_runner_loads_without_the_session() -> None:
    code = "import sys, pacs_tui.batch.runner; print('pacs_tui.session' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_session_is_a_write_guard() -> None:
    def guard(g: WriteGuard) -> WriteGuard:
        return g

    assert callable(guard(Session.__new__(Session)).require_writable)
