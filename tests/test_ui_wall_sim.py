"""The wall display on the real simulated data center: keys reach nothing.

The wall builds its own monitor with the real probe plugins; every key on a
keyboard someone might lean on is pressed, then no host may have been reset,
rebooted, or had a unit started or stopped.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pacs_tui.inventory import load_inventory
from pacs_tui.plugin_api import Health
from pacs_tui.power import PowerState
from pacs_tui.sim.datacenter import SimOptions, SimulatedDataCenter
from pacs_tui_widgets.wall import WallApp
from test_ui_read_only import instrument
from test_ui_wall import HARMLESS_KEYS
from ui_pilot import wait_for

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


async def test_wall_on_the_simulator_changes_nothing(tmp_path: Path) -> None:
    options = SimOptions(servers=14, address_octet=random.randint(100, 250), time_scale=0.02)
    center = SimulatedDataCenter(options)
    paths = center.write_client_files(tmp_path)
    calls: list[tuple[str, str]] = []
    for host in center.hosts.values():
        instrument(host, calls)
    await center.start()
    try:
        before = {name: host.snapshot() for name, host in center.hosts.items()}
        app = WallApp(load_inventory(paths["inventory"]), page_seconds=1000)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(
                pilot,
                lambda: (
                    app.monitor is not None
                    and all(
                        app.monitor.state.reading(s, "power").health is Health.OK
                        for s in center.hosts
                    )
                ),
                timeout=60,
                what="every BMC read as On by the wall's own monitor",
            )
            for key in [*HARMLESS_KEYS, "O", "N", "R", "F", "A", "p", "b", "L", "x"]:
                await pilot.press(key)
            await pilot.pause()
            assert app.is_running
            # The wall measures the sites' WAN links itself (the inventory declares them):
            # a clinic whose link is down is named on the fleet page.
            assert app.links is not None
            down = "clinic-harbour"
            await center.site_link(down).set_faults({"link_down": True})
            watch = app._link_watch
            assert watch is not None
            await watch.round()  # now, not at the next minute
            await wait_for(pilot, lambda: down in app._affected.link_problems, 10, "link down")
            assert app.links.down_sites() == [down]
            assert "LINK DOWN" in str(app._affected.render())
            await center.site_link(down).clear_faults()
            await pilot.press("q")
        after = {name: host.snapshot() for name, host in center.hosts.items()}
    finally:
        await center.stop()
    assert calls == []
    assert after == before
    assert all(h.power_state is PowerState.ON for h in center.hosts.values())
