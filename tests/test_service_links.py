"""The service measures the sites' WAN links; attached screens show them.

``pacs-tui serve --link-interval 2`` on the simulator (its own process; every
hospital and clinic has a WAN link with a gateway AE behind it) publishes
each site's link state in its snapshot and as ``links`` events. A screen's
mirror follows it; a clinic's link planted down through the simulator's
control API reads ``down`` there within a few rounds, and an attached wall
names it among the affected sites; cleared, it reads ``ok`` again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pacs_tui.credentials import Secret
from pacs_tui.remote.client import ServiceClient
from pacs_tui.remote.mirror import ServiceMirror, attach
from pacs_tui_widgets.wall import WallApp
from service_process import running_service
from sim_process import running_sim
from ui_pilot import wait_for

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

DOWN = "clinic-harbour"


async def test_attached_screens_show_the_sites_links_the_service_measures(
    tmp_path: Path,
) -> None:
    with (
        running_sim(tmp_path / "dc", "--servers", "12", "--time-scale", "0.05") as sim,
        running_service(
            sim.out / "inventory.yaml", tmp_path / "svc", "--link-interval", "2",
            env={"PACS_TUI_DATA_DIR": str(tmp_path / "data")},
        ) as service,
    ):  # fmt: skip
        client = ServiceClient(service.url, Secret(service.tokens["wall"]))
        inventory, described = await attach(client)
        mirror = ServiceMirror(client, inventory, described)
        wall = WallApp(inventory, monitor=mirror, owns_monitor=True, page_seconds=1000,
                       refresh_seconds=0.2)  # fmt: skip
        async with wall.run_test(size=(160, 50)) as pilot:

            def every_site(word: str) -> bool:
                links = mirror.links
                return (
                    links is not None
                    and bool(links.sites)
                    and all(s.state == word for s in links.all())
                )

            await wait_for(pilot, lambda: every_site("ok"), 60, "every site's link ok")
            assert mirror.links is not None and len(mirror.links.sites) == 6 + 13
            assert wall.links is mirror.links  # the wall reads the service's state
            sim.control("POST", f"/sites/{DOWN}/link", {"link_down": True})
            try:
                await wait_for(
                    pilot, lambda: mirror.links is not None and mirror.links.down_sites() == [DOWN],
                    30, "the clinic's link down in the mirror",
                )  # fmt: skip
                await wait_for(
                    pilot, lambda: DOWN in wall._affected.link_problems, 5, "on the wall"
                )
                assert "LINK DOWN" in str(wall._affected.render())
                status, snapshot = service.request(
                    "GET", "/api/v1/snapshot", service.tokens["wall"]
                )
                assert status == 200
                states = {s["site"]: s["state"] for s in snapshot["links"]["sites"]}
                assert states[DOWN] == "down"
            finally:
                sim.control("DELETE", f"/sites/{DOWN}/link")
            await wait_for(pilot, lambda: every_site("ok"), 30, "the link back")
            await pilot.press("q")


def test_a_copy_ages_by_the_senders_rule_and_refuses_bad_data() -> None:
    """Pure logic: a site read ``down`` turns ``unknown`` once older than the sender's
    ``max_age_s``; a malformed object is refused, naming it."""
    from pacs_tui.links import SiteLinksCopy

    now = [100.0]
    copy = SiteLinksCopy(clock=lambda: now[0])
    copy.apply({"max_age_s": 10, "sites": [
        {"site": DOWN, "state": "down", "detail": "wan-1: every sample lost", "age_s": 2.0},
        {"site": "hosp-a", "state": "ok", "detail": "", "age_s": None},
    ]})  # fmt: skip
    assert copy.down_sites() == [DOWN] and copy.site(DOWN).detail.startswith("wan-1")
    assert copy.site("hosp-a").state == "unknown"  # never measured proves nothing
    now[0] += 7.9
    assert copy.site(DOWN).state == "down"
    now[0] += 0.2  # 2 s old when sent + 8.1 s here: past the sender's 10 s
    assert copy.site(DOWN).state == "unknown" and copy.down_sites() == []
    with pytest.raises(ValueError, match="links"):
        copy.apply({"sites": [{"state": "ok"}]})
