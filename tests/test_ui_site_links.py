"""The wall's site tiles and affected sites with link state, from a real LinkWatch round.

The simulator runs in-process; ``LinkWatch`` measures its site links over
real TCP and DICOM into a ``LinkState``; the widgets read that state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from pacs_tui.inventory import Inventory, load_inventory
from pacs_tui.links import LinkState, LinkWatch, Sampling
from pacs_tui.plugin_api import Health
from pacs_tui.rollup import AffectedSite, HealthCounts, ServiceLevel
from pacs_tui.sim.datacenter import SimOptions, SimulatedDataCenter
from pacs_tui_widgets.site_links import SiteLinksPanel
from pacs_tui_widgets.wall_affected_sites import WallAffectedSites
from pacs_tui_widgets.wall_site_tiles import WallSiteTiles
from sim_process import random_octet

DOWN = "clinic-harbour"
SLOW = "clinic-summit"
QUIET = "clinic-oakwood"


@pytest.fixture
async def center(tmp_path: Path) -> AsyncIterator[tuple[SimulatedDataCenter, Inventory]]:
    sim = SimulatedDataCenter(SimOptions(servers=12, address_octet=random_octet()))
    paths = sim.write_client_files(tmp_path / "sim")
    await sim.start()
    try:
        yield sim, load_inventory(paths["inventory"])
    finally:
        await sim.stop()


class LinksApp(App[None]):
    def __init__(self, state: LinkState) -> None:
        super().__init__()
        self.state = state
        self.tiles = WallSiteTiles()
        self.tiles.links = state
        self.affected = WallAffectedSites()
        self.affected.links = state
        self.panel = SiteLinksPanel(state)

    def compose(self) -> ComposeResult:
        yield self.tiles
        yield self.affected
        yield self.panel


def counts(ok: int, down: int = 0) -> HealthCounts:
    return HealthCounts({Health.OK: ok, Health.DOWN: down})


async def test_tiles_and_affected_sites_join_link_and_service_state(
    center: tuple[SimulatedDataCenter, Inventory],
) -> None:
    sim, inventory = center
    await sim.site_link(DOWN).set_faults({"link_down": True})
    await sim.site_link(SLOW).set_faults({"link_latency_ms": 120})
    state = LinkState(inventory)
    watch = LinkWatch(state, sampling=Sampling(samples=3, pace_s=0.02, parallel=4))
    await watch.round()
    assert state.down_sites() == [DOWN] == sim.down_links()
    assert state.site(SLOW).state == "degraded"
    assert state.site(QUIET).state == "ok"

    app = LinksApp(state)
    async with app.run_test(size=(160, 40)) as pilot:
        app.tiles.show(
            [
                (DOWN, counts(1), None),
                (SLOW, counts(1), None),
                (QUIET, counts(1), None),
                ("dc-main", counts(9), None),
            ]
        )
        service = AffectedSite("hosp-northgate", "hospital", ServiceLevel.NONE, 1, {})
        app.affected.show([service], scope="every hospital and clinic")
        await pilot.pause()
        down_tile, slow_tile, quiet_tile, dc_tile = app.tiles.texts
        assert "LINK DOWN" in down_tile and "$state-down" in down_tile
        assert "link degraded" in slow_tile and "$state-degraded" in slow_tile
        assert "link" not in quiet_tile and "$state-ok" in quiet_tile
        assert "link" not in dc_tile  # the data center declares no link
        # The service outage first, then the sites cut off by their link alone.
        assert app.affected.link_problems == (DOWN, SLOW)
        text = str(app.affected.render())
        assert text.index("hosp-northgate NO PACS SERVICE") < text.index(f"{DOWN} LINK DOWN")
        assert "every sample lost" in text
        panel = app.panel.lines
        assert len(panel) == 6 + 13
        assert any(f"{DOWN} LINK DOWN" in line for line in panel)

        # The link is back: the next round clears it everywhere.
        await sim.site_link(DOWN).clear_faults()
        await sim.site_link(SLOW).clear_faults()
        await watch.round()
        app.tiles.show([(DOWN, counts(1), None)])
        app.affected.show([], scope="every hospital and clinic")
        app.panel.refresh_links()
        await pilot.pause()
        assert "LINK DOWN" not in app.tiles.texts[0]
        assert app.affected.link_problems == ()
        assert "PACS service normal" in str(app.affected.render())
        assert state.down_sites() == []
