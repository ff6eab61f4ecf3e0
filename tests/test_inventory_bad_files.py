"""Each broken inventory in tests/inventories/bad: exit 2, naming its line and problem.

The first line of every file says what it expects: ``# expect: line N: text``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pacs_tui.cli import main

BAD = Path(__file__).parent / "inventories" / "bad"
CASES = sorted(p for p in BAD.glob("*.yaml") if not p.name.startswith("secrets-"))
EXPECT = re.compile(r"# expect: line (\d+): (.+)")
# Fixture secrets that must never be printed, whatever the problem.
SECRETS = ("Hunter2-inline-secret", "fixture-password-0644")


def test_there_are_at_least_fifteen_broken_files() -> None:
    assert len(CASES) >= 15


@pytest.fixture(autouse=True)
def world_readable_fixtures() -> None:
    # A checkout under umask 077 would make these 0600 and hide the problem they show.
    for name in ("secrets-0644.yaml", "key-0644"):
        (BAD / name).chmod(0o644)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_inventory_exits_2_naming_line_and_problem(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    match = EXPECT.match(path.read_text().splitlines()[0] if path.read_text() else "")
    assert match, f"{path.name}: first line must be '# expect: line N: text'"
    line, text = int(match.group(1)), match.group(2)

    assert main(["inventory", "check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    expected_prefix = f"{path}:{line}: "
    hits = [e for e in err.splitlines() if e.startswith(expected_prefix) and text in e]
    assert hits, f"no problem at line {line} containing {text!r} in:\n{err}"
    assert not any(secret in err for secret in SECRETS)


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "check", str(tmp_path / "nope.yaml")]) == 2
    assert f"{tmp_path / 'nope.yaml'}: no such file" in capsys.readouterr().err
