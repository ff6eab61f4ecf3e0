"""Snapshot tests (pytest-textual-snapshot): the grid, the detail pane, the help screen.

Scripted probes with fixed answers, a fixed clock and one poll per probe make
every run draw the same screen. Update after an intended change with
``pytest tests/test_ui_snapshots.py --snapshot-update`` and review the SVGs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from textual.pilot import Pilot

from pacs_tui.plugin_api import Health
from pacs_tui_widgets.app import ControlRoomApp
from ui_pilot import all_read, make_app, wait_for

SIZE = (150, 40)
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Event-log timestamps are local time: pin the zone so snapshots match anywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def troubled_fleet() -> ControlRoomApp:
    """The scripted fleet with one server in each state the grid can show."""
    app, probes = make_app()
    probes["power"].set("arch-007", "Off", Health.DOWN, "switched off")
    probes["dicom"].set("img-004", "slow", Health.DEGRADED, "C-ECHO 900 ms", latency_ms=900.0)
    probes["network"].set("gw-north", "unreachable", Health.UNREACHABLE, "behind rtr-003")
    probes["ssh"].set("db-008", "ok", Health.OK, age_s=4000.0)  # older than 3 intervals: STALE
    probes["ssh"].set("web-011", "error", Health.UNKNOWN, "probe error: boom")
    probes["power"].set(
        "arch-001", "On", Health.OK, latency_ms=3.0, tls="UNVERIFIED", model="PowerEdge R750"
    )
    return app


def settled(*keys: str) -> Any:
    """``run_before``: wait for every first reading and the roll-up, then press keys."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ControlRoomApp)
        await wait_for(pilot, lambda: all_read(app), timeout=10, what="first readings")
        await wait_for(
            pilot,
            lambda: (
                app.rollup is not None
                and app.rollup.fleet[Health.DOWN] == 1
                and app.rollup.fleet[Health.UNKNOWN] == 1
                and app.rollup.fleet[Health.STALE] == 1
            ),
            timeout=10,
            what="roll-up with every first reading",
        )
        await app.monitor.stop()  # nothing moves any more
        # First readings arrive in a random order: keep the log out of the picture.
        app.events.clear()
        app.events.note(app.state.clock(), "arch-007: ok → down", Health.DOWN)
        await pilot.press(*keys)
        await pilot.pause()

    return run_before


def test_grid_snapshot(snap_compare: Any) -> None:
    assert snap_compare(troubled_fleet(), terminal_size=SIZE, run_before=settled("j", "space"))


def test_grid_grouped_snapshot(snap_compare: Any) -> None:
    app = troubled_fleet()

    async def grouped(pilot: Pilot[Any]) -> None:
        await settled()(pilot)
        app.execute_command("group rack")
        app.grid.cursor = 0
        await pilot.press("enter")  # fold the first group
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=grouped)


def test_detail_pane_snapshot(snap_compare: Any) -> None:
    assert snap_compare(troubled_fleet(), terminal_size=SIZE, run_before=settled("enter"))


def test_help_screen_snapshot(snap_compare: Any) -> None:
    assert snap_compare(
        troubled_fleet(), terminal_size=(150, 60), run_before=settled("question_mark")
    )
