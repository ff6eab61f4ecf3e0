"""Which hospitals and clinics have no, or degraded, PACS service, and why.

With a ``LinkState`` in ``links`` (``pacs_tui.links``) the list joins link
state and service state: a site with no service whose link is also down
says both on its line, and a site whose servers are fine but whose WAN link
is down or degraded is affected too (physicians there see no images
either). A link whose state is unknown is not listed: the site tiles say
``link ?``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from textual.markup import escape
from textual.widgets import Static

from pacs_tui.links import LinkReading, SiteLinks
from pacs_tui.plugin_api import Health
from pacs_tui.rollup import AffectedSite, ServiceLevel
from pacs_tui_widgets.site_links import LINK_WORDS, link_line
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
        # The sites' link state, set by the screen that owns a LinkState; read on every show.
        self.links: LinkReading | None = None
        self.link_problems: tuple[str, ...] = ()  # sites listed for their link alone
        self._shown: tuple[object, ...] | None = None

    def show(
        self,
        sites: Sequence[AffectedSite],
        *,
        scope: str,
        fresh: bool = True,
        within: Collection[str] | None = None,
    ) -> None:
        """Show ``sites``; ``scope`` names what an empty list covers ("hosp-a", "every clinic").

        With old data (``fresh`` false) an empty list is not good news: it says so.
        ``within`` limits the link problems shown to those sites (None: every site).
        """
        links = self.links
        key = (tuple(sites), fresh, None if links is None else links.version, within)
        if key == self._shown:
            return
        self._shown = key
        self.sites, self._fresh = tuple(sites), fresh
        link_of = _link_problems(links, within)
        self.link_problems = tuple(s for s in link_of if s not in {a.site for a in sites})
        if not sites and not self.link_problems and not fresh:
            self.update(state_markup(Health.STALE, "no fresh data: cannot tell", bold=True))
            return
        if not sites and not self.link_problems:
            self.update(state_markup(Health.OK, f"{escape(scope)}: PACS service normal", bold=True))
            return
        lines = [_line(site, link_of.get(site.site)) for site in sites]
        lines += [link_line(link_of[name]) for name in self.link_problems]
        total = len(lines)
        lines = lines[:MAX_SITES]
        if total > MAX_SITES:
            lines.append(f"  +{total - MAX_SITES} more sites affected")
        self.update("\n".join(lines))


def _link_problems(
    links: LinkReading | None, within: Collection[str] | None
) -> dict[str, SiteLinks]:
    """Sites whose link is down or degraded, in file order."""
    if links is None:
        return {}
    return {
        s.site: s
        for s in links.all()
        if s.state in ("down", "degraded") and (within is None or s.site in within)
    }


def _line(site: AffectedSite, link: SiteLinks | None = None) -> str:
    if site.level is ServiceLevel.NONE:
        head = state_markup(Health.DOWN, f"{escape(site.site)} NO PACS SERVICE", bold=True)
    else:
        head = state_markup(Health.DEGRADED, f"{escape(site.site)} DEGRADED", bold=True)
    line = f"{head} — {escape(site.reason)}"
    if link is not None:
        line += f" · {LINK_WORDS[link.state]}" + (
            f" ({escape(link.detail)})" if link.detail else ""
        )
    return line
