"""Which hospitals and clinics have no, or degraded, PACS service, and why."""

from __future__ import annotations

from collections.abc import Sequence

from textual.markup import escape
from textual.widgets import Static

from pacs_tui.plugin_api import Health
from pacs_tui.rollup import AffectedSite, ServiceLevel
from pacs_tui_widgets.wall_markup import state_markup

MAX_SITES = 12


class WallAffectedSites(Static):
    """``✖ clinic-oakwood NO PACS SERVICE — gw-oakwood-1 behind rtr-003`` per affected site."""

    DEFAULT_CSS = """
    WallAffectedSites {
        width: 1fr;
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.sites: tuple[AffectedSite, ...] | None = None
        self._fresh: bool | None = None

    def show(self, sites: Sequence[AffectedSite], *, scope: str, fresh: bool = True) -> None:
        """Show ``sites``; ``scope`` names what an empty list covers ("hosp-a", "every clinic").

        With old data (``fresh`` false) an empty list is not good news: it says so.
        """
        if self.sites == tuple(sites) and self._fresh == fresh:
            return
        self.sites, self._fresh = tuple(sites), fresh
        if not sites and not fresh:
            self.update(state_markup(Health.STALE, "no fresh data: cannot tell", bold=True))
            return
        if not sites:
            self.update(state_markup(Health.OK, f"{escape(scope)}: PACS service normal", bold=True))
            return
        lines = [_line(site) for site in sites[:MAX_SITES]]
        if len(sites) > MAX_SITES:
            lines.append(f"  +{len(sites) - MAX_SITES} more sites affected")
        self.update("\n".join(lines))


def _line(site: AffectedSite) -> str:
    if site.level is ServiceLevel.NONE:
        head = state_markup(Health.DOWN, f"{escape(site.site)} NO PACS SERVICE", bold=True)
    else:
        head = state_markup(Health.DEGRADED, f"{escape(site.site)} DEGRADED", bold=True)
    return f"{head} — {escape(site.reason)}"
