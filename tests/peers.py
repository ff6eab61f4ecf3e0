"""Shared test fixtures: real peers are required under CI, optional on a laptop."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# dcmtk's command-line tools.  pynetdicom installs scripts of the same names
# (echoscu, findscu, storescp, ...) into the venv's bin directory, which comes
# first on PATH in an activated venv: a test that means dcmtk must not find those.
DCMTK_TOOLS = frozenset(
    {
        "dcmdump",
        "dcmodify",
        "dcmqridx",
        "dcmqrscp",
        "dcmrecv",
        "dcmsend",
        "dump2dcm",
        "echoscu",
        "findscu",
        "getscu",
        "img2dcm",
        "movescu",
        "storescp",
        "storescu",
        "termscu",
        "wlmscpfs",
    }
)
# Where Debian's dcmtk package puts them, tried after PATH.
_DCMTK_FALLBACK_DIRS = ("/usr/bin", "/usr/local/bin")


def require_capability(reason: str) -> NoReturn:
    """The test cannot run here because of ``reason``: skip on a laptop, fail under CI.

    CI (``.ci/run``, as root, with every peer installed) must exercise every test,
    so a capability missing there is a failure of the CI setup, never a skip.
    """
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str, *candidates: str) -> str:
    """Path of a peer's binary; skip the test on a laptop without it, fail under CI.

    Not for dcmtk's tools: use :func:`require_dcmtk`, which never picks pynetdicom's.
    """
    for candidate in (name, *candidates):
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    require_capability(
        f"peer binary {name!r} is not installed (apt-get install it, or run .ci/run)"
    )


def require_module(name: str) -> None:
    """Skip (laptop) or fail (CI) when an optional test-only Python peer is missing."""
    try:
        __import__(name)
    except ImportError:
        require_capability(f"Python peer {name!r} is not installed (pip install -e '.[dev]')")


def _venv_dirs() -> list[Path]:
    """Directories whose executables belong to this Python environment, not the system."""
    dirs = {Path(sys.prefix), Path(sys.executable).parent}
    if os.environ.get("VIRTUAL_ENV"):
        dirs.add(Path(os.environ["VIRTUAL_ENV"]))
    return [Path(os.path.abspath(d)) for d in dirs]


def _inside(path: Path, folders: list[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def is_dcmtk(path: str, tool: str) -> bool:
    """Whether ``path`` is dcmtk's ``tool``: its ``--version`` starts ``$dcmtk: <tool> v``."""
    try:
        run = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return run.stdout.lstrip().startswith(f"$dcmtk: {tool} v")


@functools.cache
def dcmtk_binary(tool: str) -> str | None:
    """Absolute path of dcmtk's ``tool`` (e.g. ``"echoscu"``), or None when not installed.

    Searches PATH without relative entries and without this venv's directories,
    then /usr/bin and /usr/local/bin; a candidate counts only if its ``--version``
    names dcmtk.  Resolved once per process.  Raises ValueError for a name that is
    not one of :data:`DCMTK_TOOLS`.
    """
    if tool not in DCMTK_TOOLS:
        raise ValueError(f"{tool!r} is not a dcmtk tool this suite knows ({sorted(DCMTK_TOOLS)})")
    venv = _venv_dirs()
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if os.path.isabs(d)]
    for folder in (*dirs, *_DCMTK_FALLBACK_DIRS):
        candidate = Path(os.path.abspath(folder)) / tool
        if _inside(candidate, venv) or not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        if is_dcmtk(str(candidate), tool):
            return str(candidate)
    return None


def require_dcmtk(tool: str) -> str:
    """Absolute path of dcmtk's ``tool``; skip on a laptop without dcmtk, fail under CI."""
    found = dcmtk_binary(tool)
    if found is None:
        require_capability(
            f"dcmtk's {tool!r} is not installed (apt-get install dcmtk, or run .ci/run); "
            "pynetdicom's script of that name in the venv does not count"
        )
    return found
