"""The control room's baseline view: the same verdicts as ``pacs-tui baseline compare``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from pacs_tui.baseline import Baseline, Samples, ServerBaseline, load_baseline, save_baseline
from pacs_tui.baseline.compare import compare_baselines, findings_by_role, problem_line
from pacs_tui.cli import EXIT_USAGE, ui
from pacs_tui_widgets.app import ControlRoomApp
from pacs_tui_widgets.baseline_screen import BaselineScreen, ProblemLine, VerdictCell
from pacs_tui_widgets.command_line import CommandLine
from pacs_tui_widgets.keymap import KeymapConfig
from ui_fleet import FIXED_NOW, build_inventory, scripted_probes
from ui_pilot import SIZE, make_app, run_command, screen_text, wait_for

pytestmark = pytest.mark.timeout(60)


def samples(median_ms: float) -> Samples:
    # 20 values around the median, so the p95 is judged too.
    return Samples(tuple(median_ms + (i % 5) * 0.01 for i in range(20)))


def server(
    name: str, role: str, echo_ms: float, serial: str, study_count: int | None = None
) -> ServerBaseline:
    return ServerBaseline(
        name=name,
        site="dc-main",
        role=role,
        echo=samples(echo_ms),
        find=samples(echo_ms * 10) if role == "archive" else None,
        study_count=study_count,
        redfish=samples(2.0),
        hardware={
            "serial_number": serial,
            "model": "MC-R640",
            "manufacturer": "Meridian Compute",
            "bios_version": "2.19.1",
            "bmc_firmware": "2.14.1",
            "mac_addresses": [f"02:50:ac:00:00:{serial[-2:]}"],
        },
        services={"pacs": "active"},
    )


def baseline(label: str, servers: list[ServerBaseline]) -> Baseline:
    return Baseline(
        version=1,
        label=label,
        captured_at="2026-05-01T20:00:00Z",
        inventory="/fleet/inventory.yaml",
        samples=20,
        servers={s.name: s for s in servers},
        find_query={"StudyDate": "20260430", "ModalitiesInStudy": "NM"},
    )


def write_pair(tmp_path: Path) -> tuple[Path, Path]:
    """BEFORE and AFTER: the routers' C-ECHO got slow; arch-001 holds arch-002's old serial."""
    before = baseline(
        "before move",
        [
            server("arch-001", "archive", 1.0, "SER-01", 100),
            server("arch-002", "archive", 1.0, "SER-02", 50),
            server("rtr-003", "dicom-router", 0.8, "SER-03"),
            server("rtr-004", "dicom-router", 0.8, "SER-04"),
        ],
    )
    after = baseline(
        "after move",
        [
            server("arch-001", "archive", 1.0, "SER-02", 100),
            server("arch-002", "archive", 1.0, "SER-09", 50),
            server("rtr-003", "dicom-router", 9.0, "SER-03"),
            server("rtr-004", "dicom-router", 9.0, "SER-04"),
        ],
    )
    paths = tmp_path / "before.json", tmp_path / "after.json"
    save_baseline(before, paths[0])
    save_baseline(after, paths[1])
    return paths


def top(app: ControlRoomApp) -> Any:
    return app.screen_stack[-1]


async def test_baseline_command_shows_the_compare_verdicts(tmp_path: Path) -> None:
    before_path, after_path = write_pair(tmp_path)
    expected = compare_baselines(load_baseline(before_path), load_baseline(after_path))
    assert not expected.ok  # the fixture must hold problems to show
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await run_command(pilot, app, f"baseline {before_path} {after_path}")
        await wait_for(pilot, lambda: isinstance(top(app), BaselineScreen), what="baseline view")
        screen = top(app)
        await pilot.pause()
        assert screen.has_class("-not-proven")
        text = screen_text(app)
        assert f"✖ NOT PROVEN: {len(expected.problems())} problem(s)" in text

        # The problems, in compare's order and wording.
        shown = [p.finding for p in screen.query(ProblemLine)]
        assert shown == expected.problems()
        for line in screen.query(ProblemLine):  # worded as ``baseline compare`` prints it
            assert str(line.render()).endswith(problem_line(line.finding))
        kinds = {(f.name, f.metric, f.verdict) for f in shown}
        assert ("dicom-router", "echo", "worse") in kinds
        assert ("arch-001", "serial_number", "changed") in kinds
        assert "swapped with arch-002?" in text  # the detail is on screen, not only in data
        worse_line = next(p for p in screen.query(ProblemLine) if p.finding.verdict == "worse")
        assert worse_line.has_class("-worse")

        # The role table: every cell holds compare's role finding for that metric.
        table = findings_by_role(expected)
        cells = {(c.role, c.metric): c for c in screen.query(VerdictCell)}
        assert {role for role, _ in cells} == set(table) == {"archive", "dicom-router"}
        for (role, metric), cell in cells.items():
            assert cell.finding == table[role].get(metric), (role, metric)
        echo = cells[("dicom-router", "echo")]
        assert echo.finding is not None and echo.finding.verdict == "worse"
        assert echo.has_class("-worse") and "0.82 → 9.02 ms" in str(echo.render())
        assert cells[("archive", "echo")].has_class("-same")
        assert cells[("dicom-router", "find")].finding is None  # routers offer no FIND
        assert "150 → 150" in str(cells[("archive", "study_count")].render())

        # q closes the view (it does not quit the room); the room is back.
        await pilot.press("q")
        await wait_for(pilot, lambda: len(app.screen_stack) == 1, what="view closed")
        assert app.is_running


async def test_a_bad_file_is_an_inline_error_and_no_screen(tmp_path: Path) -> None:
    before_path, after_path = write_pair(tmp_path)
    data = json.loads(after_path.read_text())
    data["servers"]["arch-001"]["echo"]["values_ms"][3] = "fast"
    after_path.write_text(json.dumps(data))
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        command = f"baseline {before_path} {after_path}"
        await run_command(pilot, app, command)
        line = app.query_one(CommandLine)
        assert line.has_class("-open") and line.has_class("-error")
        error = str(line.query_one("#command-error").render())
        assert "after.json: servers.arch-001.echo.values_ms[3]" in error
        assert "'fast'" in error
        # The caret sits under the AFTER file, the one that is bad.
        caret = error.splitlines()[1].index("^")
        assert caret == len(":" + command) - len(str(after_path))
        assert len(app.screen_stack) == 1

        await run_command(pilot, app, f"baseline {tmp_path / 'nope.json'} {before_path}")
        error = str(line.query_one("#command-error").render())
        assert "nope.json: no such file" in error
        await run_command(pilot, app, f"baseline {before_path}")
        assert "two files are needed, got 1" in str(line.query_one("#command-error").render())
        assert len(app.screen_stack) == 1


async def test_a_read_only_room_opens_it_and_baseline_alone_rereads(tmp_path: Path) -> None:
    before_path, after_path = write_pair(tmp_path)
    app, _ = make_app(read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        assert app.read_only
        await run_command(pilot, app, "baseline")
        assert "no baseline compared yet" in str(
            app.query_one(CommandLine).query_one("#command-error").render()
        )
        await pilot.press("escape")
        # BEFORE against itself: everything the same.
        await run_command(pilot, app, f"baseline {before_path} {before_path}")
        await wait_for(pilot, lambda: isinstance(top(app), BaselineScreen), what="baseline view")
        await pilot.pause()
        assert top(app).has_class("-ok")
        assert "✔ SAME OR BETTER" in screen_text(app)
        assert not list(top(app).query(ProblemLine))
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(app.screen_stack) == 1, what="view closed")
        # The palette entry runs ":baseline" alone: the last two files, read again.
        save_baseline(load_baseline(after_path), before_path)
        entry = next(e for e in app.palette_commands() if e.title == "Baseline comparison")
        app.run_command_text(entry.command)
        await wait_for(pilot, lambda: isinstance(top(app), BaselineScreen), what="reopened")
        assert top(app).comparison.ok  # the same file twice, re-read: still the same


async def test_run_baseline_compare_opens_the_view_at_start(tmp_path: Path) -> None:
    before_path, after_path = write_pair(tmp_path)
    app = ControlRoomApp(
        build_inventory(12),
        probes=list(scripted_probes().values()),
        keymap=KeymapConfig(),
        clock=lambda: FIXED_NOW,
        theme_dir=Path("/nonexistent/pacs-tui-themes"),
        baseline_compare=(before_path, after_path),
    )
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(top(app), BaselineScreen), what="view at start")
        assert top(app).has_class("-not-proven")


def test_cli_run_checks_the_files_and_passes_them_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "sites: [{name: dc, kind: datacenter}]\nservers:\n  - {name: a, site: dc, role: archive}\n"
    )
    before_path, after_path = write_pair(tmp_path)
    parser = argparse.ArgumentParser(prog="pacs-tui")
    ui.register(parser.add_subparsers(dest="command"))

    def args(*files: Path) -> argparse.Namespace:
        names = [str(f) for f in files]
        return parser.parse_args(
            ["run", "--inventory", str(inventory), "--baseline-compare", *names]
        )

    opened: list[dict[str, Any]] = []
    monkeypatch.setattr(ui, "_open_ui", lambda inventory, **kw: opened.append(kw) or 0)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "pacs-tui-baseline", "version": 2}')
    assert ui.run_control_room(args(before_path, bad)) == EXIT_USAGE
    assert "bad.json: version: version 2 is not supported" in capsys.readouterr().err
    assert not opened  # no screen for a bad file
    assert ui.run_control_room(args(before_path, after_path)) == 0
    assert opened[0]["baseline_compare"] == (before_path, after_path)
