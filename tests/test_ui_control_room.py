"""Pilot tests of the control room: every binding, the filter, commands, live updates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.widgets import Footer, Sparkline

from pacs_tui.plugin_api import Health
from pacs_tui_widgets.app import ControlRoomApp
from pacs_tui_widgets.command_line import CommandLine
from pacs_tui_widgets.commands import ControlRoomCommands
from pacs_tui_widgets.filter_bar import FilterBar
from pacs_tui_widgets.fleet_rows import COLUMNS, GroupHeader
from pacs_tui_widgets.help_screen import HelpScreen
from pacs_tui_widgets.keymap import load_keymap
from ui_pilot import (
    SIZE,
    all_read,
    make_app,
    notifications,
    run_command,
    screen_text,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)


def every_binding_id(app: ControlRoomApp) -> set[str]:
    return {row.binding_id for row in app.binding_rows({})}


async def test_cursor_keys_move_and_scroll() -> None:
    app, _ = make_app(servers=80)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: all_read(app), what="first readings")
        grid = app.grid
        first = grid.cursor_server
        assert first == "arch-001"
        await pilot.press("j", "down")
        assert grid.cursor == 2
        await pilot.press("k")
        assert grid.cursor == 1
        await pilot.press("up")
        assert grid.cursor == 0
        await pilot.press("G")
        assert grid.cursor == len(grid.rows) - 1
        # The last row is on screen: the grid scrolled, it did not just move an index.
        assert grid.scroll_offset.y > 0
        assert grid.cursor_server is not None and grid.cursor_server in screen_text(app)
        await pilot.press("g")
        assert grid.cursor == 0 and grid.scroll_offset.y == 0
        await pilot.press("pagedown")
        assert grid.cursor > 10
        await pilot.press("pageup")
        assert grid.cursor == 0
        await pilot.press("end")
        assert grid.cursor == len(grid.rows) - 1
        await pilot.press("home")
        assert grid.cursor == 0


async def test_mark_range_all_and_escape_clear() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        grid = app.grid
        await pilot.press("space")
        assert grid.marks == {"arch-001"}
        assert "◆" in screen_text(app)
        await pilot.press("space")
        assert grid.marks == set()
        await pilot.press("j", "space", "j", "j", "j", "ctrl+space")
        shown = [r for r in grid.rows if isinstance(r, str)]
        assert grid.marks == set(shown[1:5])
        await pilot.press("escape")
        assert grid.marks == set()
        await pilot.press("a")
        assert grid.marks == set(app.servers)
        await pilot.press("escape")
        assert grid.marks == set()


async def test_filter_by_text_then_selector_then_bad_selector() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        grid = app.grid
        await pilot.press("slash")
        bar = app.query_one(FilterBar)
        assert bar.has_class("-open") and bar.input.has_focus
        await pilot.press(*"arch")
        assert grid.rows == ["arch-001", "arch-007", "arch-013", "arch-019"]
        await pilot.press("enter")
        assert not bar.has_class("-open") and grid.has_focus
        assert grid.view.filter_text == "arch"
        await pilot.press("slash", *["backspace"] * 4, *"role=storage")
        assert grid.rows == ["stor-006", "stor-012", "stor-018"]
        await pilot.press(*"&(")  # "role=storage&(" is incomplete: inline error, old filter
        assert bar.has_class("-error")
        error = str(bar.query_one("#filter-error").render())
        assert "role=storage&(" in error
        caret_line = error.splitlines()[1]
        assert caret_line.index("^") == len("role=storage&(")
        await pilot.pause()
        shown, footer = bar.query_one("#filter-error").region, app.query_one(Footer).region
        assert shown.height >= 2 and not shown.overlaps(footer), (shown, footer)
        assert grid.rows == ["stor-006", "stor-012", "stor-018"]
        await pilot.press("escape")
        assert grid.view.filter_text == "" and len(grid.rows) == 24
        assert grid.has_focus


async def test_command_line_select_group_sort_theme_and_errors() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        grid = app.grid
        line = app.query_one(CommandLine)
        await pilot.press("colon")
        assert line.input.has_focus and line.input.value == ":"
        await pilot.press(*"select role=archive,site=hosp-north", "enter")  # typed for real
        assert grid.marks == {"arch-001", "arch-007", "arch-013", "arch-019", "gw-north"}
        assert not line.has_class("-open") and grid.has_focus

        await run_command(pilot, app, "select role=(archive")
        assert line.has_class("-open") and line.has_class("-error")
        error = str(line.query_one("#command-error").render())
        text, caret = error.splitlines()[:2]
        assert text == ":select role=(archive"
        assert text[caret.index("^")] == "("  # the caret points at the offending character
        await pilot.pause()
        # On screen, not under the footer (both dock at the bottom).
        shown = line.query_one("#command-error").region
        footer = app.query_one(Footer).region
        assert shown.height >= 2 and not shown.overlaps(footer), (shown, footer)
        assert not line.input.region.overlaps(footer), (line.input.region, footer)
        await pilot.press("escape")
        assert not line.has_class("-open")

        await run_command(pilot, app, "frobnicate")
        assert "unknown command" in str(line.query_one("#command-error").render())
        await pilot.press("escape")

        await run_command(pilot, app, "group rack")
        headers = [r for r in grid.rows if isinstance(r, GroupHeader)]
        assert [h.value for h in headers] == ["-", "R01", "R02", "R03"]
        await run_command(pilot, app, "sort role desc")
        assert grid.view.sort_column == "role" and grid.view.reverse
        await run_command(pilot, app, "filter site=dc-main")
        assert "gw-north" not in grid.rows and len(grid.view.visible_servers) == 22
        await run_command(pilot, app, "group none")
        assert not any(isinstance(r, GroupHeader) for r in grid.rows)
        await run_command(pilot, app, "theme light")
        assert app.theme == "light"
        await run_command(pilot, app, "theme no-such-theme")
        assert "no theme" in str(line.query_one("#command-error").render())
        assert app.theme == "light"
        await pilot.press("escape")
        await run_command(pilot, app, "marks clear")
        assert grid.marks == set()
        await run_command(pilot, app, "help")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await run_command(pilot, app, "quit")
        await wait_for(pilot, lambda: app.return_code is not None, what="exit")


async def test_sort_cycles_reverses_and_puts_down_first() -> None:
    app, probes = make_app(interval_s=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: all_read(app), what="first readings")
        grid = app.grid
        assert grid.view.sort_column == "name"
        await pilot.press("s")
        assert grid.view.sort_column == "site"
        assert grid.rows[0] == "view-east"  # clinic-east sorts first
        await pilot.press("S")
        assert grid.view.reverse and grid.rows[0] == "gw-north"
        for _ in range(len(COLUMNS) - 1):
            await pilot.press("s")
        assert grid.view.sort_column == "name" and not grid.view.reverse
        probes["power"].set("web-017", "Off", Health.DOWN, "switched off")
        await run_command(pilot, app, "sort power")
        await wait_for(pilot, lambda: grid.rows[0] == "web-017", what="DOWN server on top")
        assert "SORT" not in screen_text(app)  # header shows the column, not a debug word
        assert "POWER ▲" in screen_text(app)


async def test_group_collapse_with_enter_and_mark_a_group() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        grid = app.grid
        await run_command(pilot, app, "group site")
        header = grid.rows[0]
        assert isinstance(header, GroupHeader) and header.value == "clinic-east"
        dc = next(r for r in grid.rows if isinstance(r, GroupHeader) and r.value == "dc-main")
        grid.cursor = grid.rows.index(dc)
        before = len(grid.rows)
        await pilot.press("enter")
        assert len(grid.rows) == before - 22
        folded = grid.rows[grid.cursor]
        assert isinstance(folded, GroupHeader) and folded.collapsed
        assert "▸ site dc-main (22)" in screen_text(app)
        await pilot.press("space")  # space on a header marks the whole group
        assert len(grid.marks) == 22
        await pilot.press("enter")
        assert len(grid.rows) == before


async def test_detail_pane_shows_probes_sparkline_and_tls_warning() -> None:
    app, probes = make_app(interval_s=0.05)
    probes["power"].set("arch-001", "On", Health.OK, "", tls="UNVERIFIED", password="hunter2")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.state.history("arch-001", "network")) >= 3)
        await pilot.press("enter")
        detail = app.detail
        assert detail.display and detail.server == "arch-001"
        await pilot.pause()
        text = screen_text(app)
        assert "TLS UNVERIFIED" in text
        assert "hunter2" not in text and "password" not in text
        for probe in ("power", "network", "dicom", "ssh"):
            assert f"{probe}  ●" in text
        spark = detail.query_one("#spark-network", Sparkline)
        assert spark.display and len(list(spark.data or [])) >= 3
        await pilot.press("j")  # the pane follows the cursor
        assert detail.server == "arch-007"
        assert "TLS UNVERIFIED" not in screen_text(app)
        await pilot.press("escape")
        assert not detail.display
        assert app.grid.marks == set()


async def test_help_lists_every_binding_id_and_closes() -> None:
    app, _ = make_app()
    async with app.run_test(size=(150, 60)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.pause()
        text = screen_text(app)
        ids = every_binding_id(app)
        assert len(ids) >= 20
        for binding_id in ids:
            assert binding_id in text, binding_id
        assert ":select EXPR" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_keymap_from_config_file_remaps_and_reports_unknown_ids(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "keymap:\n  grid.down: n\n  grid.mark: x\n  no.such.binding: z\n  grid.up: [1, 2]\n"
    )
    keymap = load_keymap(config)
    assert keymap.keymap == {"grid.down": "n", "grid.mark": "x", "no.such.binding": "z"}
    assert any("grid.up" in p for p in keymap.problems)
    app, _ = make_app(keymap=keymap)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("n", "n")
        assert app.grid.cursor == 2
        await pilot.press("j")  # j is no longer bound to down
        assert app.grid.cursor == 2
        await pilot.press("x")
        assert app.grid.marks == {"arch-013"}
        toasts = " ".join(notifications(app))
        assert "no.such.binding" in toasts and "grid.up" in toasts
        await pilot.press("question_mark")
        await pilot.pause()
        help_text = screen_text(app)
        assert "n" in help_text and "grid.down" in help_text


def test_keymap_bad_file_is_reported_not_fatal(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("keymap: [unclosed\n")
    result = load_keymap(config)
    assert result.keymap == {} and "not valid YAML" in result.problems[0]
    assert load_keymap(tmp_path / "missing.yaml").problems == []


async def test_palette_offers_and_runs_commands() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        titles = [entry.title for entry in app.palette_commands()]
        for expected in ("Group by site", "Sort by power", "Theme: wall", "Clear marks"):
            assert expected in titles
        assert ControlRoomCommands in app.COMMANDS
        await pilot.press("ctrl+p")
        await pilot.press(*"Group by role")
        await wait_for(pilot, lambda: "Group by role" in screen_text(app), what="palette hit")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.grid.view.group_by == "role", what="grouped by role")


async def test_live_change_updates_grid_summary_log_and_toasts_once() -> None:
    app, probes = make_app(interval_s=0.1)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_for(pilot, lambda: all_read(app), what="first readings")
        await wait_for(pilot, lambda: app.health.by_server["arch-001"] is Health.OK)
        for name in ("arch-001", "arch-007", "arch-013", "arch-019", "db-002", "db-008", "db-014"):
            probes["power"].set(name, "Off", Health.DOWN, "switched off")
        await wait_for(
            pilot,
            lambda: app.rollup is not None and app.rollup.fleet[Health.DOWN] == 7,
            what="7 down in the roll-up",
        )
        await wait_for(pilot, lambda: any("DOWN" in n for n in notifications(app)))
        text = screen_text(app)
        assert "✖ 7 down" in text
        log_lines = [line.text for line in app.events.lines]
        assert any(
            re.fullmatch(r"\d\d:\d\d:\d\d ✖ arch-001: ok → down", line.rstrip())
            for line in log_lines
        ), log_lines
        assert any(line.endswith("✖ db-014: ok → down") for line in log_lines)
        down_toasts = [n for n in notifications(app) if "DOWN" in n]
        assert len(down_toasts) == 1 and "7 servers went DOWN" in down_toasts[0]


async def test_click_selects_a_row() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        grid = app.grid
        await pilot.click(grid, offset=(5, 4))  # line 0 is the header: line 4 is row 3
        assert grid.cursor == 3
        await pilot.double_click(grid, offset=(5, 2))
        assert app.detail.display and app.detail.server == grid.rows[1]


async def test_q_quits() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_code is not None, what="exit")


def test_read_only_session_refuses_a_runner() -> None:
    app, _ = make_app(read_only=True)
    assert app.runner is None
    with pytest.raises(ValueError, match="read-only"):
        ControlRoomApp(app.inventory, read_only=True, probes=[], runner=object())
    runner = object()
    assert ControlRoomApp(app.inventory, probes=[], runner=runner).runner is runner


async def test_data_coming_back_shares_one_line_and_leaves_the_news_visible() -> None:
    """After a reconnection hundreds of servers go STALE → OK: one line, not hundreds."""
    from textual.app import App, ComposeResult

    from pacs_tui_widgets.event_log import EventLog

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield EventLog(id="log")

    app = Host()
    async with app.run_test(size=(160, 20)) as pilot:
        log = app.query_one(EventLog)
        changes = {f"web-{i:03d}": (Health.STALE, Health.OK) for i in range(40)}
        changes["arch-001"] = (Health.OK, Health.DOWN)
        log.health_changes(0.0, changes)
        await pilot.pause()
        lines = [line.text for line in log.lines]
        assert len(lines) == 2, lines
        assert "40 server(s) fresh again: web-000, web-001" in lines[0]
        assert "arch-001: ok → down" in lines[1]
