"""A custody board file that turns bad never stops the wall or the control room.

Both keep the last good board on show, marked as such, beside the file's
first problem, and follow the file again once it is good.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pacs_tui.batch.audit import AUDIT_FILE, AuditLog
from pacs_tui.custody import CustodyBoard, CustodyState, default_custody_path
from pacs_tui_widgets.move_bar import MoveBar
from pacs_tui_widgets.wall import WallApp
from test_ui_move import room
from test_ui_wall import fixed_monitor, group_inventory, screen_text
from ui_fleet import build_inventory
from ui_pilot import SIZE, notifications, wait_for

UNREADABLE = "custody board unreadable, showing the last good read"


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _text(text: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_text(text)

    return write


# How the file goes bad, and what the shown problem must say.
BAD_BOARDS: dict[str, tuple[Callable[[Path], None], str]] = {
    "entry-not-object": (
        _text('{"servers": {"rtr-1": "racked"}}'),
        "server 'rtr-1': must be an object",
    ),
    "unknown-state": (
        _text('{"servers": {"rtr-1": {"state": "on-the-moon"}}}'),
        "field 'state': unknown custody state 'on-the-moon'",
    ),
    "top-level-list": (_text('["rtr-1"]'), "must be a JSON object"),
    "truncated": (_text('{"version": 1, "servers": {"rtr-1": {"st'), ":1:38: not valid JSON"),
    "fifo": (_fifo, "not a regular file (a FIFO)"),
}


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("PACS_TUI_DATA_DIR", str(folder))
    monkeypatch.setenv("PACS_TUI_THEME_DIR", str(tmp_path / "no-themes"))
    return folder


def spoil(how: str) -> str:
    """Replace the board file the way ``how`` says; the text the problem must show."""
    make, reason = BAD_BOARDS[how]
    path = default_custody_path()
    path.unlink()
    make(path)
    return reason


def restore(names: list[str], advanced: list[str]) -> None:
    """A good board again, written as the CLI would (``advanced`` one step on)."""
    path = default_custody_path()
    path.unlink(missing_ok=True)  # a fresh board: only ``advanced`` left running
    other = CustodyBoard(names, path=path, audit=AuditLog(path.parent / AUDIT_FILE))
    other.advance(advanced)
    other.close()


@pytest.mark.parametrize("how", sorted(BAD_BOARDS))
async def test_the_wall_keeps_running_and_shows_why_the_board_is_not_read(how: str) -> None:
    inventory = group_inventory()
    names = inventory.names()
    restore(names, ["rtr-1"])
    board = CustodyBoard.open(inventory)
    app = WallApp(inventory, monitor=fixed_monitor(inventory), refresh_seconds=0.05, custody=board)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "1 shut-down" in screen_text(app))
        assert UNREADABLE not in screen_text(app)
        reason = spoil(how)
        await wait_for(pilot, lambda: UNREADABLE in screen_text(app))
        assert app.move.board_error is not None and reason in app.move.board_error
        assert reason in app.query_one("#wall-move").text  # type: ignore[attr-defined]
        text = screen_text(app)
        # The last good board stays, marked: rtr-1 is still counted and still cuts clinic-c.
        assert "CUSTODY (last good read)" in text and "1 shut-down" in text
        assert "clinic-c NO PACS SERVICE" in text
        assert board.state("rtr-1") is CustodyState.SHUT_DOWN
        # Still alive and following the file: a good board again clears the warning.
        restore(names, ["rtr-2"])
        await wait_for(pilot, lambda: UNREADABLE not in screen_text(app))
        await wait_for(pilot, lambda: "1 shut-down" in screen_text(app))
        assert board.state("rtr-2") is CustodyState.SHUT_DOWN
        assert board.state("rtr-1") is CustodyState.RUNNING  # the new file is the truth
        assert app.is_running
    board.close()


@pytest.mark.parametrize("how", ["entry-not-object", "truncated"])
async def test_the_control_room_shows_the_problem_and_refuses_to_change_custody(
    how: str, data_dir: Path
) -> None:
    inventory = build_inventory(24)
    names = inventory.names()
    restore(names, ["arch-001"])
    board = CustodyBoard.open(inventory)
    app = room(inventory, custody=board)
    async with app.run_test(size=SIZE) as pilot:
        bar = app.query_one(MoveBar)
        await wait_for(pilot, lambda: "1 shut-down" in bar.text)
        reason = spoil(how)
        await wait_for(pilot, lambda: UNREADABLE in bar.text, timeout=10)
        assert "1 shut-down" in bar.text  # the last good board
        spoiled = default_custody_path().read_bytes()
        # Pressing c on a bad board changes nothing: the file is not overwritten.
        app.grid.set_marks(["db-002"])
        await pilot.press("c")
        await wait_for(pilot, lambda: any("custody not changed" in n for n in notifications(app)))
        note = next(n for n in notifications(app) if "custody not changed" in n)
        assert reason.split(":")[-1].strip() in note
        assert default_custody_path().read_bytes() == spoiled
        assert board.state("db-002") is CustodyState.RUNNING
        # Fixed: the warning goes and the key works again.
        restore(names, ["rtr-003"])
        await wait_for(pilot, lambda: UNREADABLE not in bar.text, timeout=10)
        logged = [strip.text for strip in app.events.lines]
        assert sum(UNREADABLE in line for line in logged) == 1, logged  # once, not per second
        assert any("custody board readable again" in line for line in logged), logged
        await pilot.press("c")
        await wait_for(pilot, lambda: board.state("db-002") is CustodyState.SHUT_DOWN)
        assert app.is_running
    board.close()
