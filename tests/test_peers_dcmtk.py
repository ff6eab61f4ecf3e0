"""dcmtk's tools are found outside the venv, where pynetdicom installs scripts of the same names."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import peers
from peers import DCMTK_TOOLS, dcmtk_binary, is_dcmtk, require_dcmtk

TESTS = Path(__file__).resolve().parent
VENV_BIN = Path(os.path.abspath(sys.executable)).parent
# The tools the suite and the benchmarks run; pynetdicom ships the first six too.
USED = ("echoscu", "findscu", "getscu", "movescu", "storescp", "storescu", "dcmqrscp")


@pytest.fixture
def venv_first(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """PATH as in an activated venv: its bin directory first."""
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("VIRTUAL_ENV", str(Path(sys.prefix)))
    dcmtk_binary.cache_clear()
    yield
    dcmtk_binary.cache_clear()


@pytest.mark.parametrize("tool", USED)
def test_dcmtk_tool_resolves_outside_the_venv_even_with_the_venv_first(
    tool: str, venv_first: None
) -> None:
    path = Path(require_dcmtk(tool))
    assert path.is_absolute()
    venv = Path(os.path.abspath(sys.prefix))
    assert venv not in path.parents, f"{tool} resolved inside the venv: {path}"
    assert VENV_BIN not in path.parents, f"{tool} resolved inside the venv: {path}"
    assert is_dcmtk(str(path), tool)


def test_a_same_named_script_that_is_not_dcmtk_is_passed_over(
    tmp_path: Path, venv_first: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    impostor = tmp_path / "echoscu"
    impostor.write_text("#!/bin/sh\necho 'echoscu 1.0 (not dcmtk)'\n")
    impostor.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert not is_dcmtk(str(impostor), "echoscu")
    found = require_dcmtk("echoscu")
    assert found != str(impostor) and is_dcmtk(found, "echoscu")


def test_only_dcmtk_tools_are_resolved_this_way() -> None:
    with pytest.raises(ValueError, match="'sshd' is not a dcmtk tool"):
        dcmtk_binary("sshd")


# A dcmtk tool looked up by PATH (require_binary, shutil.which) or run by bare name.
_TOOL = "|".join(sorted(DCMTK_TOOLS))
_BY_PATH = re.compile(
    rf"""(?:require_binary|which)\(\s*["'][^"']*\b(?:{_TOOL})\b"""
    rf"""|\[\s*["'](?:{_TOOL})["']"""
)


def test_no_test_or_benchmark_finds_a_dcmtk_tool_on_path() -> None:
    """Every dcmtk call goes through ``peers.require_dcmtk``/``dcmtk_binary``."""
    ours = {Path(peers.__file__).resolve(), Path(__file__).resolve()}
    offenders = [
        f"{path.relative_to(TESTS)}:{n}: {line.strip()}"
        for path in sorted(TESTS.rglob("*.py"))
        if path.resolve() not in ours and ".mypy_cache" not in path.parts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if _BY_PATH.search(line)
    ]
    assert not offenders, "dcmtk looked up on PATH (use peers.require_dcmtk):\n" + "\n".join(
        offenders
    )
