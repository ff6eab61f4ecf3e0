"""The runbook: validation with file/line/key, offsets, and the clock against plan."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pacs_tui.cli import runbook as runbook_cli
from pacs_tui.runbook import RunbookError, RunbookProgress, load_runbook, parse_runbook

TZ = timezone(timedelta(hours=2))
START = datetime(2024, 5, 17, 20, 0, tzinfo=TZ)

GOOD = """\
version: 1
name: dc-main move
start: 2024-05-17T20:00:00+02:00
phases:
  - name: Pre-checks
    kind: pre-checks
    owner: Anna
    planned_start: +00:00
    planned_end: +00:30
  - name: Replication verified
    kind: replication
    owner: Ben
    servers: "role=archive"
    planned_start: +00:30
    planned_end: +01:00
  - name: Shutdown waves
    kind: shutdown
    owner: Anna
    planned_start: +01:00
    planned_end: +03:00
  - name: Transit
    kind: transit
    owner: Movers Ltd
    planned_start: "2024-05-17T23:00:00+02:00"
    planned_end: +12:30
"""


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PACS_TUI_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def problems_of(text: str) -> list[str]:
    with pytest.raises(RunbookError) as caught:
        parse_runbook(text, Path("rb.yaml"))
    return [str(p) for p in caught.value.problems]


def test_good_runbook_offsets_and_iso_times() -> None:
    runbook = parse_runbook(GOOD, Path("rb.yaml"))
    assert [p.name for p in runbook.phases] == [
        "Pre-checks",
        "Replication verified",
        "Shutdown waves",
        "Transit",
    ]
    transit = runbook.phase("transit")
    assert transit.planned_start == START + timedelta(hours=3)
    # +12:30 stays an offset (YAML 1.1 would read it as the base-60 integer 750).
    assert transit.planned_end == START + timedelta(hours=12, minutes=30)
    assert runbook.phase("Replication verified").servers == "role=archive"
    assert runbook.phases[1].line == 10


def test_problems_name_file_line_and_key() -> None:
    text = GOOD.replace("    kind: shutdown\n", "    kind: shutdwn\n").replace(
        "    owner: Ben\n", "    owner: Ben\n    colour: red\n"
    )
    text = text.replace("    planned_end: +01:00\n", "    planned_end: +00:20\n")
    found = problems_of(text)
    assert "rb.yaml:13: phases[1].colour: unknown key" in found[0]
    assert any(p.startswith("rb.yaml:16: phases[1].planned_end: must be after") for p in found)
    assert any(p.startswith("rb.yaml:18: phases[2].kind: unknown kind 'shutdwn'") for p in found)


def test_missing_fields_bad_offset_and_no_start() -> None:
    text = """\
phases:
  - name: Pre-checks
    planned_start: +00:00
    planned_end: half past
  - name: Pre-checks
    owner: Ben
    servers: "role=("
    planned_start: 2024-05-17T20:00:00+02:00
    planned_end: 2024-05-17T21:00:00+02:00
"""
    found = problems_of(text)
    assert "rb.yaml:2: phases[0].owner: required text is missing" in found
    assert any("rb.yaml:3: phases[0].planned_start: offset '+00:00' needs a 'start:'" in p
               for p in found)  # fmt: skip
    assert any("rb.yaml:4: phases[0].planned_end: 'half past' is neither" in p for p in found)
    assert any(p.startswith("rb.yaml:7: phases[1].servers: selector:") for p in found)


def test_duplicate_phase_and_out_of_order(tmp_path: Path) -> None:
    text = GOOD.replace("name: Shutdown waves", "name: pre-checks").replace(
        "planned_start: +01:00", "planned_start: +00:10"
    )
    found = problems_of(text)
    assert any("duplicate phase 'pre-checks' (first on line 5)" in p for p in found)
    assert any("starts before the previous phase 'Replication verified'" in p for p in found)
    syntax = tmp_path / "broken.yaml"
    syntax.write_text("phases: [\n")
    with pytest.raises(RunbookError) as caught:
        load_runbook(syntax)
    assert "YAML syntax error" in str(caught.value.problems[0])


def test_clock_against_plan_with_a_fixed_clock(tmp_path: Path) -> None:
    runbook = parse_runbook(GOOD, Path("rb.yaml"))
    progress = RunbookProgress(tmp_path / "progress.json")
    # Before anything started and before the planned start: on plan.
    clock = runbook.clock(START - timedelta(minutes=5), progress)
    assert (clock.current.name, clock.verdict) == ("Pre-checks", "on plan")  # type: ignore[union-attr]
    # Twelve minutes past the planned start and not started: behind by 12.
    assert runbook.clock(START + timedelta(minutes=12), progress).verdict == "behind by 12 min"
    progress.start(runbook.phases[0], START)
    progress.finish(runbook.phases[0], START + timedelta(minutes=20))  # 10 min early
    progress.start(runbook.phases[1], START + timedelta(minutes=21))
    clock = runbook.clock(START + timedelta(minutes=25), progress)
    assert clock.current.name == "Replication verified"  # type: ignore[union-attr]
    assert clock.planned.name == "Pre-checks"  # type: ignore[union-attr]
    assert clock.verdict == "ahead by 10 min"
    assert clock.done == 1
    # The running phase overruns its planned end (21:00) by 17 minutes.
    assert runbook.clock(START + timedelta(minutes=77), progress).verdict == "behind by 17 min"
    # Progress survives a reload.
    again = RunbookProgress(tmp_path / "progress.json")
    assert runbook.clock(START + timedelta(minutes=25), again).slip_min == pytest.approx(-10)


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    runbook_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_cli_check_show_and_mark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    good = tmp_path / "rb.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("owner: Ben", "owner: ''"))
    assert cli("runbook", "check", str(good)) == 0
    assert cli("runbook", "check", str(bad)) == 2
    assert "bad.yaml:12: phases[1].owner: required text is missing" in capsys.readouterr().err
    assert cli("runbook", "mark", str(good), "pre-checks", "--done",
               "--at", "2024-05-17T20:40:00+02:00") == 0  # fmt: skip
    capsys.readouterr()
    assert cli("runbook", "show", str(good), "--json", "--now", "2024-05-17T20:45:00+02:00") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["clock"]["current"] == "Replication verified"
    assert shown["clock"]["verdict"] == "behind by 15 min"  # not started, due at 20:30
    assert (data_dir / "runbook-progress.json").exists()
    assert cli("runbook", "show", str(good), "--now", "2024-05-17T20:45:00+02:00") == 0
    assert "current Replication verified" in capsys.readouterr().out
