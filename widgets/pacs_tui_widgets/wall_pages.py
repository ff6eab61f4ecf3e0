"""The pages the wall display rotates through: the whole fleet, each hospital, the clinics."""

from __future__ import annotations

from dataclasses import dataclass

from pacs_tui.inventory import Inventory
from pacs_tui.rollup import upstream_of

FLEET_TITLE = "Whole fleet"
CLINICS_TITLE = "Clinics"


@dataclass(frozen=True)
class WallPage:
    """One page of the wall: which sites it covers and which servers matter to them.

    ``sites`` is empty for the whole-fleet page. ``relies_on`` lists the
    servers elsewhere (the data center's routers, archives, storage) that the
    page's own servers depend on, so a hospital's page can say which of them
    are down.
    """

    title: str
    sites: tuple[str, ...]
    servers: frozenset[str]
    relies_on: tuple[str, ...]

    @property
    def is_fleet(self) -> bool:
        """Whether this page shows the whole fleet."""
        return not self.sites

    @property
    def relevant(self) -> frozenset[str]:
        """The page's own servers and everything they rely on."""
        return self.servers | frozenset(self.relies_on)


def wall_pages(inventory: Inventory) -> list[WallPage]:
    """The whole fleet, then one page per hospital, then all clinics on one page.

    Hospitals and clinics without a server in the inventory get no page:
    there is nothing to show about them.
    """
    servers_at: dict[str, list[str]] = {}
    for server in inventory.servers:
        servers_at.setdefault(server.site, []).append(server.name)
    pages = [WallPage(FLEET_TITLE, (), frozenset(inventory.names()), ())]

    def page(title: str, sites: list[str]) -> WallPage:
        names = [n for site in sites for n in servers_at[site]]
        return WallPage(title, tuple(sites), frozenset(names), tuple(upstream_of(inventory, names)))

    for site in inventory.sites.values():
        if site.kind == "hospital" and site.name in servers_at:
            pages.append(page(site.name, [site.name]))
    clinics = [
        s.name for s in inventory.sites.values() if s.kind == "clinic" and s.name in servers_at
    ]
    if clinics:
        pages.append(page(CLINICS_TITLE, clinics))
    return pages
