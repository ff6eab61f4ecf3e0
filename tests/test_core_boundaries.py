"""The core never imports Textual: the UI is one consumer of it among several.

The static rules (no ``import textual``, no widgets, CLI or simulator below
their layer, plugins apart) are contracts in ``.importlinter`` (``make
imports``). What a static graph cannot see is checked here: that importing
every core module at run time, through whatever third-party code it uses,
loads no Textual.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pacs_tui

CORE = Path(pacs_tui.__file__).parent


def core_modules() -> list[str]:
    names = []
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(CORE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts))
    return names


def test_importing_every_core_module_loads_no_textual() -> None:
    modules = core_modules()
    assert len(modules) > 5
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core pulled in: {out.stdout.strip()}"
