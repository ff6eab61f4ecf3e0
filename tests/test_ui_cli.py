"""``pacs-tui run`` / ``demo``: argument handling and the demo's simulator process."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from pacs_tui.cli import EXIT_USAGE, ui


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pacs-tui")
    ui.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_run_and_demo_parse() -> None:
    args = parse("run", "--inventory", "fleet.yaml", "--read-only")
    assert args.handler is ui.run_control_room and args.read_only
    assert args.inventory == Path("fleet.yaml")
    demo = parse("demo", "--servers", "40", "--wall", "--time-scale", "0.1")
    assert demo.handler is ui.run_demo
    assert (demo.servers, demo.wall, demo.time_scale, demo.read_only) == (40, True, 0.1, False)


def test_run_with_a_broken_inventory_reports_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "inventory.yaml"
    bad.write_text(
        "sites: [{name: dc, kind: datacenter}]\nservers:\n  - {name: a, site: nowhere}\n"
    )
    assert ui.run_control_room(parse("run", "--inventory", str(bad))) == EXIT_USAGE
    assert "inventory.yaml" in capsys.readouterr().err


def test_wall_parses_and_rejects_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse("wall", "--inventory", "fleet.yaml", "--page-seconds", "5")
    assert args.handler is ui.run_wall and args.page_seconds == 5
    assert not hasattr(args, "read_only")  # the wall has no writable mode at all
    assert ui.run_wall(parse("wall", "--inventory", "x.yaml", "--page-seconds", "0")) == EXIT_USAGE
    bad = tmp_path / "inventory.yaml"
    bad.write_text("servers: 3\n")
    assert ui.run_wall(parse("wall", "--inventory", str(bad))) == EXIT_USAGE
    assert "inventory.yaml" in capsys.readouterr().err


def test_demo_rejects_a_tiny_fleet(capsys: pytest.CaptureFixture[str]) -> None:
    assert ui.run_demo(parse("demo", "--servers", "3")) == EXIT_USAGE
    assert "--servers" in capsys.readouterr().err


def test_demo_simulator_runs_in_its_own_process_and_stops(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    out.mkdir()
    with ui._simulator(out, 7, 0.02) as ready:
        assert ready
        state = json.loads((out / "sim.json").read_text())
        assert state["servers"] == 7
        assert (out / "inventory.yaml").exists()
        pid = state["pid"]
        assert Path(f"/proc/{pid}").exists()
        inventory = (out / "inventory.yaml").read_text()
        assert "address: 127." in inventory  # loopback only
    assert not (out / "sim.json").exists()  # the simulator cleaned up: it was stopped
    status = Path(f"/proc/{pid}/status")
    assert not status.exists() or "zombie" in status.read_text()


def test_run_is_the_default_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pacs_tui.cli import main

    bad = tmp_path / "inventory.yaml"
    bad.write_text("servers: 3\n")
    # Reaches run's handler (which reports the broken inventory) without the word "run".
    assert main(["--inventory", str(bad)]) == EXIT_USAGE
    assert "inventory.yaml" in capsys.readouterr().err
