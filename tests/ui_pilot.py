"""Helpers for Pilot tests of the control room: build the app, wait for conditions."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from pacs_tui_widgets.app import ControlRoomApp
from pacs_tui_widgets.keymap import KeymapConfig
from ui_fleet import FIXED_NOW, ScriptedProbe, build_inventory, scripted_probes

SIZE = (150, 44)


def make_app(
    *,
    read_only: bool = False,
    servers: int = 24,
    keymap: KeymapConfig | None = None,
    interval_s: float = 1000.0,
    theme_dir: Path | None = None,
) -> tuple[ControlRoomApp, dict[str, ScriptedProbe]]:
    """A control room on the scripted fleet, with a fixed clock and no user config."""
    probes = scripted_probes()
    for probe in probes.values():
        probe.interval_s = interval_s  # type: ignore[misc]
    app = ControlRoomApp(
        build_inventory(servers),
        read_only=read_only,
        probes=list(probes.values()),
        keymap=keymap if keymap is not None else KeymapConfig(),
        clock=lambda: FIXED_NOW,
        theme_dir=theme_dir if theme_dir is not None else Path("/nonexistent/pacs-tui-themes"),
    )
    return app, probes


async def wait_for(
    pilot: Pilot[Any], predicate: Callable[[], object], timeout: float = 5.0, what: str = ""
) -> None:
    """Let the app run until ``predicate()`` is true; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.02)


def all_read(app: ControlRoomApp) -> bool:
    """Every applicable probe of every server has a reading."""
    return all(
        app.state.latest(server, probe) is not None
        for server, probes in app.applicable.items()
        for probe in probes
    )


def screen_text(app: ControlRoomApp) -> str:
    """The whole screen as plain text (what a monochrome terminal would show)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


def notifications(app: ControlRoomApp) -> list[str]:
    """Texts of the toasts raised so far."""
    return [n.message for n in app._notifications]


async def run_command(pilot: Pilot[Any], app: ControlRoomApp, text: str) -> None:
    """Open the command line with its key, put ``text`` in it, press enter."""
    from pacs_tui_widgets.command_line import CommandLine

    await pilot.press("colon")
    line = app.query_one(CommandLine)
    line.input.value = f":{text}"
    line.input.cursor_position = len(line.input.value)
    await pilot.press("enter")
