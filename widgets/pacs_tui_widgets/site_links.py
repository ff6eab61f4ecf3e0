"""Each hospital's and clinic's WAN link state, as screens show it; one line per site.

The screens read a ``pacs_tui.links.LinkState`` (filled by a ``LinkWatch``
or by preflight reports); they never measure a link themselves. A link
state takes the wall's state colours: ``ok`` OK, ``degraded`` DEGRADED,
``down`` DOWN, ``unknown`` UNKNOWN.
"""

from __future__ import annotations

from textual.markup import escape
from textual.widgets import Static

from pacs_tui.links import LinkReading, SiteLinks, SiteLinkState
from pacs_tui.plugin_api import Health
from pacs_tui_widgets.wall_markup import state_markup

LINK_HEALTH: dict[SiteLinkState, Health] = {
    "ok": Health.OK,
    "degraded": Health.DEGRADED,
    "down": Health.DOWN,
    "unknown": Health.UNKNOWN,
}
# What a tile says about a link that is not ok (an ok link says nothing: tiles stay short).
LINK_WORDS: dict[SiteLinkState, str] = {
    "degraded": "link degraded",
    "down": "LINK DOWN",
    "unknown": "link ?",
}


def link_line(site: SiteLinks) -> str:
    """``✖ clinic-oakwood LINK DOWN — wan-1: every sample lost (…)`` as markup."""
    health = LINK_HEALTH[site.state]
    word = "link ok" if site.state == "ok" else LINK_WORDS[site.state]
    head = state_markup(health, f"{escape(site.site)} {word}", bold=site.state == "down")
    return f"{head} — {escape(site.detail)}" if site.detail else head


def links_summary(state: LinkReading) -> str:
    """One line for the control room's summary, as markup; "" when no site declares links.

    ``WAN links: ✖ clinic-harbour LINK DOWN · ▲ clinic-summit link degraded · 17 ok``;
    every site that is not ok is named (down first), the ok ones only counted.
    """
    sites = state.all()
    if not sites:
        return ""
    order = {"down": 0, "degraded": 1, "unknown": 2}
    named = sorted((s for s in sites if s.state != "ok"), key=lambda s: order[s.state])
    ok = len(sites) - len(named)
    parts = [
        state_markup(LINK_HEALTH[s.state], f"{escape(s.site)} {LINK_WORDS[s.state]}",
                     bold=s.state == "down")
        for s in named
    ]  # fmt: skip
    if ok:
        parts.append(state_markup(Health.OK, f"{ok} ok"))
    return "WAN links: " + " · ".join(parts)


class SiteLinksPanel(Static):
    """One line per site that declares links, read from ``links`` on each ``refresh_links``."""

    DEFAULT_CSS = """
    SiteLinksPanel {
        width: 1fr;
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, links: LinkReading, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.links = links
        self.lines: list[str] = []
        self._version = -1

    def on_mount(self) -> None:
        self.refresh_links()

    def refresh_links(self) -> None:
        """Redraw when the state has news (its ``version`` moved); cheap otherwise."""
        if self.links.version == self._version and self.lines:
            return
        self._version = self.links.version
        self.lines = [link_line(site) for site in self.links.all()]
        self.update("\n".join(self.lines) or "no site declares a link")
