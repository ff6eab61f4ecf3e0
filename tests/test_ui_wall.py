"""The read-only wall display: numbers, down list, affected sites, stale warning, pages, keys."""

from __future__ import annotations

import gc
import itertools
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.color import Color
from textual.pilot import Pilot
from textual.widgets import Digits

from pacs_tui.inventory import Inventory, Server
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import Action, Health, Probe, ProbeContext, ProbeResult
from pacs_tui_themes import load_themes
from pacs_tui_widgets.wall import WallApp
from pacs_tui_widgets.wall_affected_sites import WallAffectedSites
from pacs_tui_widgets.wall_down_list import WallDownList
from pacs_tui_widgets.wall_stale_banner import WallStaleBanner
from pacs_tui_widgets.wall_state_count import WallStateCount
from pacs_tui_widgets.wall_title import WallTitle
from test_rollup import hand_inventory

NOW = 1_700_000_000.0
SIZE = (120, 36)


@pytest.fixture(autouse=True)
def no_user_themes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own theme folder out of these tests."""
    monkeypatch.setenv("PACS_TUI_THEME_DIR", str(tmp_path / "no-themes"))


def group_inventory() -> Inventory:
    """A data center with a router chain, one hospital (two gateways), two clinics."""
    return hand_inventory(Path("/wall.yaml"))


class ScriptedProbe(Probe):
    """A probe whose answers the test sets; it records every call made on it."""

    interval_s = 0.05
    timeout_s = 1.0

    def __init__(self, name: str, answers: dict[str, tuple[str, Health]] | None = None) -> None:
        self.name = name  # type: ignore[misc]
        self.answers = answers if answers is not None else {}
        self.default = ("On", Health.OK) if name == "power" else ("ok", Health.OK)
        self.calls: list[str] = []

    async def open(self, context: ProbeContext) -> None:
        self.calls.append("open")

    async def close(self) -> None:
        self.calls.append("close")

    def applies_to(self, server: Server) -> bool:
        return True

    async def probe(self, server: Server) -> ProbeResult:
        self.calls.append("probe")
        word, health = self.answers.get(server.name, self.default)
        return ProbeResult.make(word, health, latency_ms=1.0)


async def wait_for(pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the app run until ``condition`` holds (fails after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)


def digits(app: WallApp, health: Health) -> str:
    return app.query_one(f"#count-{health.value}", WallStateCount).query_one(Digits).value


def screen_text(app: WallApp) -> str:
    """What is on screen, as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


class FiveSecondProbe(ScriptedProbe):
    interval_s = 5.0  # readings up to 15 s old are fresh


async def shows(pilot: Pilot[Any], app: WallApp, *needles: str) -> str:
    """Wait until every needle is on screen (a frame may lag the widget update)."""
    await wait_for(pilot, lambda: all(n in screen_text(app) for n in needles))
    return screen_text(app)


def fixed_monitor(inventory: Inventory) -> FleetMonitor:
    """A monitor that never polls: its state is filled by hand, on a fixed clock."""
    monitor = FleetMonitor(inventory, probes=[FiveSecondProbe("network")])
    monitor.state.clock = lambda: NOW
    for name in inventory.names():
        monitor.state.record(name, "network", ProbeResult("ok", Health.OK, 1.0, "", NOW - 1))
    return monitor


def outage(monitor: FleetMonitor) -> None:
    """rtr-1 refuses, so hosp-a's first gateway and clinic-c's gateway are cut off."""
    record = monitor.state.record
    record("rtr-1", "network", ProbeResult("refused", Health.DOWN, None, "", NOW - 1))
    for gateway in ("gw-a-1", "gw-c-1"):
        record(
            gateway, "network", ProbeResult("unreachable", Health.UNREACHABLE, None, "", NOW - 1)
        )
    record("db-1", "network", ProbeResult("slow", Health.DEGRADED, 900.0, "", NOW - 1))


# -- what the wall shows ----------------------------------------------------------


async def test_wall_shows_counts_down_servers_and_affected_sites() -> None:
    inventory = group_inventory()
    network = ScriptedProbe("network", {"rtr-1": ("refused", Health.DOWN)})
    network.default = ("ok", Health.OK)
    # gw-a-1 and gw-c-1 also fail: the scheduler judges them UNREACHABLE behind rtr-1.
    network.answers.update({"gw-a-1": ("refused", Health.DOWN), "gw-c-1": ("refused", Health.DOWN)})
    power = ScriptedProbe("power", {"stor-1": ("Off", Health.OK)})
    app = WallApp(inventory, probes=[network, power], page_seconds=1000, refresh_seconds=0.05)
    async with app.run_test(size=SIZE) as pilot:
        shown = (Health.DOWN, Health.UNREACHABLE, Health.OK)
        await wait_for(pilot, lambda: [digits(app, h) for h in shown] == ["2", "2", "5"])
        assert app.theme == "wall"
        assert digits(app, Health.DEGRADED) == "0"
        down = app.query_one(WallDownList)
        assert down.down == ("stor-1", "rtr-1")
        assert down.unreachable == ("gw-a-1", "gw-c-1")
        affected = app.query_one(WallAffectedSites).sites
        assert affected is not None
        # stor-1 is off: everything behind it is cut off, every site affected.
        assert {a.site: a.level.value for a in affected} == {
            "hosp-a": "no service",
            "clinic-b": "no service",
            "clinic-c": "no service",
        }
        await shows(
            pilot,
            app,
            "DOWN (2): stor-1  rtr-1",
            "clinic-c NO PACS SERVICE",
            "PACS · whole fleet · 9 servers",
        )
        # Power back on: only rtr-1's customers stay affected.
        power.answers.clear()
        await wait_for(pilot, lambda: digits(app, Health.DOWN) == "1")
        await shows(
            pilot,
            app,
            "hosp-a DEGRADED — gw-a-1 behind rtr-1",
            "clinic-c NO PACS SERVICE — gw-c-1 behind rtr-1",
        )
        assert "clinic-b" not in {a.site for a in app.query_one(WallAffectedSites).sites or ()}
        assert app.query_one("#count-down", WallStateCount).has_class("-alarm")
    # The wall owned the monitor: it opened and closed the probes itself.
    assert network.calls[0] == "open" and network.calls[-1] == "close"


async def test_stale_warning_appears_when_readings_age_and_goes_when_fresh() -> None:
    inventory = group_inventory()
    network = ScriptedProbe("network")
    app = WallApp(
        inventory, probes=[network], page_seconds=1000, refresh_seconds=0.05, stale_after_s=10
    )
    offset = 0.0
    async with app.run_test(size=SIZE) as pilot:
        app.monitor.state.clock = lambda: time.time() + offset
        banner = app.query_one(WallStaleBanner)
        await wait_for(pilot, lambda: digits(app, Health.OK) == "9")
        assert not banner.has_class("-stalled") and banner.display is False
        offset = 42.0  # the clock runs on while the readings stay where they were
        await app.monitor.stop()
        await wait_for(pilot, lambda: banner.has_class("-stalled"))
        assert banner.display is True
        await wait_for(pilot, lambda: bool(re.search(r"DATA IS 4[23] s OLD", screen_text(app))))
        offset = 0.0
        app.monitor.start()
        await wait_for(pilot, lambda: not banner.has_class("-stalled"))
        await wait_for(pilot, lambda: "OLD" not in screen_text(app))


async def test_partial_staleness_and_no_data_at_all() -> None:
    inventory = group_inventory()
    monitor = fixed_monitor(inventory)
    monitor.state.record("db-1", "network", ProbeResult("ok", Health.OK, 1.0, "", NOW - 40))
    app = WallApp(inventory, monitor=monitor, page_seconds=1000, refresh_seconds=0.05)
    async with app.run_test(size=SIZE):
        banner = app.query_one(WallStaleBanner)
        assert banner.has_class("-partial") and not banner.has_class("-stalled")
        assert banner.warning == "◌ 1 reading is stale, oldest 40 s"
        assert digits(app, Health.STALE) == "1"

    empty = FleetMonitor(inventory, probes=[ScriptedProbe("network")])
    clock = [NOW]
    empty.state.clock = lambda: clock[0]
    app = WallApp(inventory, monitor=empty, page_seconds=1000, refresh_seconds=0.05)
    async with app.run_test(size=SIZE) as pilot:
        banner = app.query_one(WallStaleBanner)
        assert banner.warning == ""  # just started: no data yet is no alarm
        clock[0] = NOW + 15
        await wait_for(pilot, lambda: banner.has_class("-stalled"))
        assert banner.warning.startswith("⚠ NO DATA for 15 s")
        assert digits(app, Health.UNKNOWN) == "9"
        # No data is not good news: the wall does not claim that nothing is down.
        await wait_for(pilot, lambda: screen_text(app).count("no fresh data: cannot tell") == 2)
        text = screen_text(app)
        assert "no server is down" not in text and "service normal" not in text


async def test_pages_rotate_through_fleet_hospitals_and_clinics() -> None:
    inventory = group_inventory()
    monitor = fixed_monitor(inventory)
    outage(monitor)
    app = WallApp(inventory, monitor=monitor, page_seconds=0.3, refresh_seconds=10)
    assert [p.title for p in app.pages] == ["Whole fleet", "hosp-a", "Clinics"]
    seen: list[str] = []
    async with app.run_test(size=SIZE) as pilot:

        def note_page() -> bool:
            title = str(app.query_one(WallTitle).content)
            if not seen or seen[-1] != title:
                seen.append(title)
            return len(seen) >= 4

        await wait_for(pilot, note_page)
        cycle = [
            "PACS · whole fleet · 9 servers",
            "PACS · hosp-a · 2 servers",
            "PACS · Clinics · 2 servers",
        ]
        # Wherever the wall was when we started looking, it moves on in order.
        for before, after in itertools.pairwise(seen):
            assert cycle.index(after) == (cycle.index(before) + 1) % len(cycle), seen
        assert set(seen) == set(cycle)


async def test_a_hospital_page_shows_its_own_numbers_and_what_hurts_it() -> None:
    inventory = group_inventory()
    monitor = fixed_monitor(inventory)
    outage(monitor)
    app = WallApp(inventory, monitor=monitor, page_seconds=1000, refresh_seconds=10)
    async with app.run_test(size=SIZE) as pilot:
        assert digits(app, Health.OK) == "5"  # whole fleet first
        app.next_page()
        await pilot.pause()
        assert app.page.title == "hosp-a"
        assert digits(app, Health.OK) == "1" and digits(app, Health.UNREACHABLE) == "1"
        # Only the servers hosp-a relies on: rtr-1 (down) and db-1 (degraded), not gw-c-1.
        assert app.query_one(WallDownList).down == ("rtr-1",)
        assert app.query_one(WallDownList).unreachable == ("gw-a-1",)
        assert [a.site for a in app.query_one(WallAffectedSites).sites or ()] == ["hosp-a"]
        # Upstream of hosp-a: stor-1, db-1 (degraded), img-1, rtr-1 (down), rtr-2.
        await shows(pilot, app, "⊘ hosp-a 1/2 up · degraded", "✖ upstream (5 servers) 3/5 up")
        app.next_page()
        await pilot.pause()
        assert app.page.title == "Clinics"
        assert [a.site for a in app.query_one(WallAffectedSites).sites or ()] == ["clinic-c"]
        assert app.query_one(WallDownList).unreachable == ("gw-c-1",)


# -- read-only --------------------------------------------------------------------

HARMLESS_KEYS = [
    *"abcdefghijklmnoprstuvwxyz0123456789",
    *"AQRX",
    "enter",
    "space",
    "tab",
    "shift+tab",
    "escape",
    "backspace",
    "delete",
    "up",
    "down",
    "left",
    "right",
    "pageup",
    "pagedown",
    "home",
    "end",
    "colon",
    "slash",
    "question_mark",
    "exclamation_mark",
    "ctrl+p",
    "ctrl+space",
    "ctrl+a",
    "ctrl+d",
    "ctrl+r",
    "ctrl+s",
    "ctrl+t",
    "ctrl+x",
    "f1",
    "f2",
    "f5",
]
ALLOWED_ACTIONS = {"quit", "app.quit", "app.focus_next", "app.focus_previous", "screen.copy_text"}


async def test_no_key_changes_anything_and_no_action_exists() -> None:
    inventory = group_inventory()
    network = FiveSecondProbe("network", {"rtr-1": ("refused", Health.DOWN)})
    gc.collect()
    # Other tests in this process may have built actions; none may appear now.
    actions_before = {id(o) for o in gc.get_objects() if isinstance(o, Action)}
    # A calm app (1 Hz, as on a real wall): the Pilot waits for idle after each key.
    app = WallApp(inventory, probes=[network], page_seconds=1000, refresh_seconds=1.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: digits(app, Health.DOWN) == "1")
        bound = {b.binding.action for b in app.active_bindings.values()}
        assert bound <= ALLOWED_ACTIONS, bound - ALLOWED_ACTIONS
        assert app.use_command_palette is False
        before = (app.theme, app.page_index, len(app.screen_stack), type(app.screen))
        for key in HARMLESS_KEYS:
            await pilot.press(key)
        await pilot.pause()
        assert app.is_running and app.return_code is None
        assert (app.theme, app.page_index, len(app.screen_stack), type(app.screen)) == before
        assert digits(app, Health.DOWN) == "1" and digits(app, Health.OK) == "8"
        # Nothing but probes ever ran; no action plugin was ever built.
        assert set(network.calls) == {"open", "probe"}
        assert not hasattr(app, "runner") and not hasattr(app.monitor, "runner")
        gc.collect()
        assert not [
            o for o in gc.get_objects() if isinstance(o, Action) and id(o) not in actions_before
        ]
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)


async def test_the_wall_starts_with_a_textual_theme_lacking_state_colours() -> None:
    inventory = group_inventory()
    app = WallApp(inventory, monitor=fixed_monitor(inventory), theme="nord", page_seconds=1000)
    async with app.run_test(size=SIZE):
        assert app.theme == "nord"
        # The state colours fall back to the built-in dark theme's.
        down = app.query_one("#count-down", WallStateCount)
        expected = Color.parse(app.themes["dark"].variables["state-down"])
        assert down.styles.color == expected


# -- snapshots --------------------------------------------------------------------


def snapshot_app(theme: str = "wall", **kwargs: Any) -> WallApp:
    inventory = group_inventory()
    monitor = fixed_monitor(inventory)
    outage(monitor)
    return WallApp(
        inventory,
        monitor=monitor,
        page_seconds=1000,
        theme=theme,
        themes=load_themes(Path("/nonexistent-theme-dir")),
        **kwargs,
    )


def test_snapshot_wall_fleet_page(snap_compare: Any) -> None:
    assert snap_compare(snapshot_app(), terminal_size=SIZE)


def test_snapshot_wall_hospital_page(snap_compare: Any) -> None:
    async def second_page(pilot: Pilot[Any]) -> None:
        assert isinstance(pilot.app, WallApp)
        pilot.app.next_page()
        await pilot.pause()

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=second_page)


def test_snapshot_wall_stalled_data(snap_compare: Any) -> None:
    app = snapshot_app()
    app.monitor.state.clock = lambda: NOW + 75
    assert snap_compare(app, terminal_size=SIZE)


@pytest.mark.parametrize("theme", ["dark", "light", "wall"])
def test_snapshot_sample_screen_in_each_builtin_theme(snap_compare: Any, theme: str) -> None:
    assert snap_compare(snapshot_app(theme), terminal_size=(100, 24))
