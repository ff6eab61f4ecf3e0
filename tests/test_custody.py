"""Custody states: forward one step, audited corrections, persistence, affected sites."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from pacs_tui.batch.audit import AuditLog
from pacs_tui.cli import runbook as runbook_cli
from pacs_tui.custody import CustodyBoard, CustodyError, CustodyState
from pacs_tui.inventory import Inventory, load_inventory_text
from pacs_tui.rollup import ServiceLevel

INVENTORY = """\
sites:
  - {name: dc-main, kind: datacenter}
  - {name: dc-backup, kind: remote-backup}
  - {name: hosp-north, kind: hospital}
  - {name: clinic-east, kind: clinic}
servers:
  - {name: db-001, site: dc-main, role: database}
  - {name: arch-001, site: dc-main, role: archive, depends_on: [db-001]}
  - {name: rtr-001, site: dc-main, role: dicom-router, depends_on: [arch-001]}
  - {name: rtr-002, site: dc-main, role: dicom-router, depends_on: [arch-001]}
  - {name: gw-north-1, site: hosp-north, role: edge-gateway, depends_on: [rtr-001]}
  - {name: gw-north-2, site: hosp-north, role: edge-gateway, depends_on: [rtr-002]}
  - {name: gw-east-1, site: clinic-east, role: edge-gateway}
  - {name: bkp-arch-01, site: dc-backup, role: archive}
"""


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PACS_TUI_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    return load_inventory_text(INVENTORY, path)


def test_forward_one_step_at_a_time(inventory: Inventory, tmp_path: Path) -> None:
    with AuditLog(tmp_path / "audit.sqlite3", operator="lead") as audit:
        board = CustodyBoard.open(inventory, path=tmp_path / "custody.json", audit=audit)
        seen: list[list[str]] = []
        board.subscribe(lambda changes: seen.append([c.server for c in changes]))
        changes = board.advance(["db-001", "arch-001"])
        assert [(c.server, c.before, c.after) for c in changes] == [
            ("db-001", CustodyState.RUNNING, CustodyState.SHUT_DOWN),
            ("arch-001", CustodyState.RUNNING, CustodyState.SHUT_DOWN),
        ]
        assert seen == [["db-001", "arch-001"]]
        # Skipping a step is refused, for every server at once, and nothing changes.
        with pytest.raises(CustodyError) as refused:
            board.advance(["db-001", "rtr-001"], to="racked")
        assert "db-001 is shut-down: it can only go to in-transit, not racked" in str(refused.value)
        assert "rtr-001 is running" in str(refused.value)
        assert board.state("db-001") is CustodyState.SHUT_DOWN
        # Going back is not an advance either.
        with pytest.raises(CustodyError):
            board.advance(["db-001"], to=CustodyState.RUNNING)
        # Many at once to a named state; those already there are left alone.
        assert len(board.advance(["db-001", "arch-001"], to="in-transit")) == 2
        assert board.advance(["db-001", "arch-001"], to="in-transit") == []
        counts = board.counts()
        assert counts[CustodyState.IN_TRANSIT] == 2
        assert counts[CustodyState.RUNNING] == len(inventory) - 2
        assert list(counts) == list(CustodyState)
        events = [e for e in audit.events() if e.kind == "custody"]
        assert [(e.server, e.call, e.operator) for e in events] == [
            ("db-001", "running -> shut-down", "lead"),
            ("arch-001", "running -> shut-down", "lead"),
            ("db-001", "shut-down -> in-transit", "lead"),
            ("arch-001", "shut-down -> in-transit", "lead"),
        ]


def test_last_state_and_corrections_are_audited(inventory: Inventory, tmp_path: Path) -> None:
    with AuditLog(tmp_path / "audit.sqlite3") as audit:
        board = CustodyBoard.open(inventory, path=tmp_path / "custody.json", audit=audit)
        for _ in range(5):
            board.advance(["gw-east-1"])
        assert board.state("gw-east-1") is CustodyState.VERIFIED
        with pytest.raises(CustodyError, match="already verified"):
            board.advance(["gw-east-1"])
        with pytest.raises(CustodyError, match="needs a reason"):
            board.correct(["gw-east-1"], "racked", reason=" ")
        changes = board.correct(["gw-east-1"], "racked", reason="cable in the wrong port")
        assert changes[0].correction and changes[0].after is CustodyState.RACKED
        rows = [e for e in audit.events() if e.kind == "custody-correction"]
        assert len(rows) == 1
        assert (rows[0].server, rows[0].call, rows[0].detail) == (
            "gw-east-1",
            "verified -> racked",
            "cable in the wrong port",
        )


def test_persisted_and_reloaded(inventory: Inventory, tmp_path: Path) -> None:
    path = tmp_path / "custody.json"
    with AuditLog(tmp_path / "audit.sqlite3") as audit:
        first = CustodyBoard.open(inventory, path=path, audit=audit)
        first.advance(["rtr-001", "rtr-002"])
        second = CustodyBoard.open(inventory, path=path, audit=audit)
        assert second.state("rtr-001") is CustodyState.SHUT_DOWN
        assert second.since("rtr-001") == first.since("rtr-001") != ""
        # A change made by another board (another process) is seen before the next change.
        second.advance(["rtr-001"])
        first.advance(["rtr-002"])
        assert first.state("rtr-001") is CustodyState.IN_TRANSIT
    saved = json.loads(path.read_text())
    assert saved["servers"]["rtr-002"]["state"] == "in-transit"


def test_affected_sites_follow_custody_and_dependencies(
    inventory: Inventory, tmp_path: Path
) -> None:
    with AuditLog(tmp_path / "audit.sqlite3") as audit:
        board = CustodyBoard.open(inventory, path=tmp_path / "custody.json", audit=audit)
        assert board.affected_sites(inventory) == ()
        board.advance(["rtr-001"])
        (north,) = board.affected_sites(inventory)
        assert (north.site, north.level) == ("hosp-north", ServiceLevel.DEGRADED)
        assert north.causes == {"gw-north-1": ("rtr-001",)}
        board.advance(["arch-001"])
        (north,) = board.affected_sites(inventory)
        assert north.level is ServiceLevel.NONE
        for state in ("in-transit", "racked", "powered"):
            board.advance(["arch-001", "rtr-001"], to=state)
        assert board.affected_sites(inventory) == ()  # powered servers serve again


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    runbook_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_cli_show_advance_correct(
    inventory: Inventory, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = str(inventory.path)
    assert cli("custody", "advance", "--inventory", inv, "--select", "site=dc-main") == 0
    assert "4 server(s) changed" in capsys.readouterr().out
    assert cli("custody", "advance", "-i", inv, "-s", "db-001", "--to", "racked") == 1
    assert "nothing was changed" in capsys.readouterr().err
    assert cli("custody", "show", "--inventory", inv, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["counts"]["shut-down"] == 4
    assert shown["no_service"] == [
        {"site": "hosp-north", "kind": "hospital", "level": "no service"}
    ]
    assert cli("custody", "correct", "-i", inv, "-s", "db-001", "--to", "running") == 2  # no reason
    capsys.readouterr()
    assert cli("custody", "correct", "-i", inv, "-s", "db-001", "--to", "running",
               "--reason", "rehearsal reset") == 0  # fmt: skip
    with AuditLog(data_dir / "audit.sqlite3") as audit:
        kinds = [e.kind for e in audit.events()]
    assert kinds.count("custody") == 4 and kinds.count("custody-correction") == 1


def test_cli_refuses_custody_changes_on_a_read_only_inventory(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "read-only.yaml"
    path.write_text("read_only: true\n" + INVENTORY)
    board = tmp_path / "custody.json"
    for action in (["advance"], ["correct", "--to", "racked", "--reason", "x"]):
        args = ["custody", *action[:1], "-i", str(path), "-s", "db-001", "--board", str(board)]
        assert cli(*args, *action[1:]) == 2
        assert "marked read_only; custody changes are disabled" in capsys.readouterr().err
    assert not board.exists()  # nothing written


def test_an_explicit_board_that_is_not_there_is_refused_unless_created(
    inventory: Inventory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv, typo = str(inventory.path), tmp_path / "nodir" / "board.json"
    assert cli("custody", "show", "-i", inv, "--board", str(typo)) == 2
    assert f"no custody board at {typo}" in capsys.readouterr().err
    assert cli("custody", "advance", "-i", inv, "-s", "db-001", "--board", str(typo)) == 2
    assert "add --create to start one there" in capsys.readouterr().err
    assert not typo.parent.exists()  # no directory, no board, no lock file
    args = ["custody", "advance", "-i", inv, "-s", "db-001", "--create"]
    assert cli(*args, "--board", str(typo)) == 2
    assert f"--board: no directory {typo.parent}" in capsys.readouterr().err
    fresh = tmp_path / "board.json"
    assert cli(*args, "--board", str(fresh)) == 0
    assert f"starting a new board at {fresh}" in capsys.readouterr().err
    assert cli("custody", "show", "-i", inv, "--board", str(fresh), "--json") == 0
    assert json.loads(capsys.readouterr().out)["counts"]["shut-down"] == 1
