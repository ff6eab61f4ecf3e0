"""A read-only control room on the real simulated data center changes nothing.

Every binding is pressed and every palette command run, with the real probe
plugins polling real Redfish BMCs, SSH servers and DICOM nodes on loopback;
so are the batch keys of a writable room (O N R F b A p) and ``:power``,
which a read-only room does not even bind.
Afterwards no host may have been reset, rebooted or had a unit started or
stopped, and every host is still On exactly as before.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandPalette

from pacs_tui.inventory import load_inventory
from pacs_tui.power import PowerState
from pacs_tui.session import ReadOnlySession
from pacs_tui.sim.datacenter import SimOptions, SimulatedDataCenter
from pacs_tui.sim.host import SimulatedHost
from pacs_tui_widgets.app import ControlRoomApp
from pacs_tui_widgets.audit_pane import AuditPane
from pacs_tui_widgets.batch_desk import BATCH_BINDINGS
from pacs_tui_widgets.command_line import CommandLine
from pacs_tui_widgets.detail_pane import DetailPane
from pacs_tui_widgets.filter_bar import FilterBar
from pacs_tui_widgets.help_screen import HelpScreen
from pacs_tui_widgets.keymap import KeymapConfig
from pacs_tui_widgets.summary_bar import SummaryBar
from ui_pilot import wait_for

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

READ_ONLY_VERBS = {"is-active"}


def instrument(host: SimulatedHost, calls: list[tuple[str, str]]) -> None:
    """Record every state-changing entry point of a host (and still carry it out)."""
    reset, shutdown, reboot, systemctl = (
        host.reset,
        host.os_shutdown,
        host.os_reboot,
        host.systemctl,
    )

    def counted_reset(reset_type: Any) -> None:
        calls.append((host.name, f"reset {reset_type}"))
        reset(reset_type)

    def counted_shutdown() -> None:
        calls.append((host.name, "os_shutdown"))
        shutdown()

    def counted_reboot() -> None:
        calls.append((host.name, "os_reboot"))
        reboot()

    async def counted_systemctl(verb: str, units: Any) -> tuple[int, str]:
        if verb not in READ_ONLY_VERBS:
            calls.append((host.name, f"systemctl {verb}"))
        return await systemctl(verb, units)

    host.reset = counted_reset  # type: ignore[method-assign]
    host.os_shutdown = counted_shutdown  # type: ignore[method-assign]
    host.os_reboot = counted_reboot  # type: ignore[method-assign]
    host.systemctl = counted_systemctl  # type: ignore[method-assign]
    host.on_change = lambda h: calls.append((h.name, "state changed"))


async def test_every_binding_and_palette_command_in_read_only_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACS_TUI_DATA_DIR", str(tmp_path / "data"))
    options = SimOptions(
        servers=20, address_octet=random.randint(100, 250), time_scale=0.02, tls=True
    )
    center = SimulatedDataCenter(options)
    paths = center.write_client_files(tmp_path)
    calls: list[tuple[str, str]] = []
    for host in center.hosts.values():
        instrument(host, calls)
    await center.start()
    try:
        before = {name: host.snapshot() for name, host in center.hosts.items()}
        assert all(h.power_state is PowerState.ON for h in center.hosts.values())
        inventory = load_inventory(paths["inventory"])
        app = ControlRoomApp(
            inventory, read_only=True, keymap=KeymapConfig(), theme_dir=tmp_path / "themes"
        )
        assert app.runner is None and app.session.read_only
        with pytest.raises(ReadOnlySession):
            app.session.load_actions()
        async with app.run_test(size=(150, 44)) as pilot:
            await wait_for(
                pilot,
                lambda: (
                    app.monitor.scheduler is not None
                    and all(app.state.latest(s, "power") is not None for s in app.servers)
                ),
                timeout=60,
                what="a power reading of every server from the real BMCs",
            )
            assert "READ-ONLY" in app.sub_title
            await press_every_binding(pilot, app, tmp_path)
            await press_batch_keys(pilot, app)
            for entry in app.palette_commands():
                app.run_command_text(entry.command)
                await pilot.pause()
                if isinstance(app.screen, HelpScreen):
                    await pilot.press("escape")
            await wait_for(pilot, lambda: app.monitor.state.updates > 0)
            # The room measures the sites' WAN links beside its poller (read only too):
            # a clinic whose link is down is named in the summary.
            watch = app.link_watch
            assert watch is not None and app.links is not None
            await center.site_link("clinic-harbour").set_faults({"link_down": True})
            await watch.round()  # now, not at the next minute
            bar = app.query_one(SummaryBar)
            await wait_for(pilot, lambda: "clinic-harbour LINK DOWN" in bar.links, 5, "link")
            assert "WAN links:" in str(bar.render())
            assert "no hospital or clinic affected" not in str(bar.render())  # a link is down
            await wait_for(
                pilot,
                lambda: "clinic-harbour WAN link: ok → down"
                in "\n".join(line.text for line in app.events.lines),
                5, "the log line",
            )  # fmt: skip
            await center.site_link("clinic-harbour").clear_faults()
            await pilot.press("q")
        after = {name: host.snapshot() for name, host in center.hosts.items()}
    finally:
        await center.stop()
    assert calls == []
    assert after == before
    assert not (tmp_path / "data" / "audit.sqlite3").exists()  # not even an audit log
    assert all(h.power_state is PowerState.ON for h in center.hosts.values())


async def press_every_binding(pilot: Any, app: ControlRoomApp, baseline_dir: Path) -> None:
    """Press the first key of every binding, opening whatever it needs first."""
    keys = {row.binding_id: row.keys.split(",")[0] for row in app.binding_rows({})}
    pressed: set[str] = set()

    async def press(binding_id: str) -> None:
        await pilot.press(keys[binding_id])
        pressed.add(binding_id)

    for binding_id in (
        "grid.down", "grid.up", "grid.bottom", "grid.top", "grid.page_down", "grid.page_up",
        "grid.mark", "grid.mark_range", "grid.mark_all", "grid.sort_next", "grid.sort_reverse",
    ):  # fmt: skip
        await press(binding_id)
    await press("grid.open")
    assert app.query_one(DetailPane).display
    await press("app.clear")  # closes the pane
    await press("app.clear")  # clears marks and filter
    await press("app.filter")
    assert app.query_one(FilterBar).has_class("-open")
    await press("filter.cancel")
    await press("app.command")
    assert app.query_one(CommandLine).has_class("-open")
    await press("command.close")
    await press("app.help")
    assert isinstance(app.screen, HelpScreen)
    await press("help.close")
    await press("app.audit")
    assert app.query_one(AuditPane).display
    await press("app.audit")
    await press("app.palette")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
    await pilot.press("escape")
    if "baseline.close" in keys:
        # The baseline view only reads files: open one (a file against itself) and close it.
        from test_ui_baseline import write_pair

        before, _ = write_pair(baseline_dir)
        app.open_baseline(before, before)
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "BaselineScreen")
        await press("baseline.close")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ != "BaselineScreen")
    pressed.add("app.quit")  # pressed last, by the test itself
    assert pressed == set(keys)


async def press_batch_keys(pilot: Any, app: ControlRoomApp) -> None:
    """The writable room's batch keys and ``:power``: nothing opens, nothing is planned."""
    from pacs_tui_widgets.plan_screen import PlanScreen

    app.grid.set_marks(list(app.servers)[:3])
    keys = [b.key for b in BATCH_BINDINGS if not isinstance(b, tuple)]
    assert keys == ["O", "N", "R", "F", "b", "A", "p"]
    for key in keys:
        await pilot.press(key)
        assert not isinstance(app.screen, PlanScreen)
    for verb in ("off", "on", "restart", "force-off"):
        await pilot.press("colon")
        line = app.query_one(CommandLine)
        line.input.value = f":power {verb}"
        await pilot.press("enter")
        assert "refused" in str(line.query_one("#command-error").render())
        await pilot.press("escape")
    assert not app.query("#batch")  # no batch pane at all
    assert app.runner is None and app.session.actions == {}
