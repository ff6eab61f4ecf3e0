"""Shared test fixtures: real peers are required under CI, optional on a laptop."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binary(name: str, *candidates: str) -> str:
    """Path of a peer's binary; skip the test on a laptop without it, fail under CI."""
    for candidate in (name, *candidates):
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    reason = f"peer binary {name!r} is not installed (apt-get install it, or run .ci/run)"
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def require_module(name: str) -> None:
    """Skip (laptop) or fail (CI) when an optional test-only Python peer is missing."""
    try:
        __import__(name)
    except ImportError:
        reason = f"Python peer {name!r} is not installed (pip install -e '.[dev]')"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
