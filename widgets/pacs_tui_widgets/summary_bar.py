"""The summary bar: the whole fleet, each site and role, and who is affected.

Trouble that is not lost hospital service (a silent BMC of a serving
server, a flapping unit) has its own line, so it neither hides nor passes
for an affected hospital.
"""

from __future__ import annotations

from rich.markup import escape
from textual.widgets import Static

from pacs_tui.plugin_api import Health
from pacs_tui.rollup import HEALTH_ORDER, HEALTH_WORDS, FleetRollup, HealthCounts, ServiceLevel
from pacs_tui_widgets.health_style import glyph

NAMES_SHOWN = 4  # per kind of trouble on the watch line; the rest is "+N more"


def counts_markup(counts: HealthCounts) -> str:
    """``● 212 up · ▲ 3 degraded`` with each state in its theme colour (zeros left out)."""
    parts = [
        f"[$state-{h}]{glyph(h)} {counts[h]} {HEALTH_WORDS[h]}[/]"
        for h in HEALTH_ORDER
        if h is Health.OK or counts[h]
    ]
    return " · ".join(parts)


def summary_markup(rollup: FleetRollup, *, link_trouble: bool = False) -> str:
    """The bar's text: fleet line, per-site line, per-role line, affected sites.

    ``link_trouble``: some site's WAN link is down or degraded, so an empty list
    of affected sites must not read as "no one affected".
    """
    fleet = f"[b]FLEET[/b] {rollup.fleet.total} servers  {counts_markup(rollup.fleet)}"
    sites = "  │  ".join(
        f"[b]{escape(site)}[/b] {counts_markup(counts)}"
        for site, counts in rollup.by_site.items()
        if counts.total and _noteworthy(counts, rollup)
    )
    roles = "  │  ".join(
        f"[b]{escape(role)}[/b] {counts_markup(counts)}" for role, counts in rollup.by_role.items()
    )
    if rollup.affected:
        entries = []
        for site in rollup.affected:
            word = "NO SERVICE" if site.level is ServiceLevel.NONE else "degraded"
            entries.append(
                f"[$state-down][b]{escape(site.site)}[/b] ({site.kind}, {word}: "
                f"{escape(site.reason)})[/]"
            )
        affected = "[b]AFFECTED[/b] " + " · ".join(entries)
    elif link_trouble:  # the services answer, but a site's WAN link does not
        affected = (
            "[$state-ok]no hospital or clinic without PACS service here[/]; "
            "[$state-degraded]WAN link problems below[/]"
        )
    else:
        affected = "[$state-ok]no hospital or clinic affected[/]"
    lines = [fleet, f"[dim]sites[/dim] {sites or 'all up'}", f"[dim]roles[/dim] {roles}", affected]
    watch = watch_markup(rollup)
    if watch:
        lines.append(watch)
    return "\n".join(lines)


def watch_markup(rollup: FleetRollup) -> str:
    """``MANAGEMENT rtr-003 BMC unreachable — service OK · FLAPPING gw-1 ssh …`` or ``""``."""
    parts = []
    if rollup.management:
        shown = list(rollup.management)[:NAMES_SHOWN]
        more = len(rollup.management) - len(shown)
        entries = " · ".join(f"{escape(n)} {rollup.management_word(n)}" for n in shown)
        parts.append(
            f"[$state-degraded][b]MANAGEMENT[/b] {entries}{f' +{more} more' if more else ''}[/]"
        )
    if rollup.flapping:
        flaps = [
            f"{escape(server)} {escape(probe)} {escape(flap.describe())}"
            for server, pairs in rollup.flapping.items()
            for probe, flap in pairs
        ]
        more = len(flaps) - NAMES_SHOWN
        text = " · ".join(flaps[:NAMES_SHOWN]) + (f" +{more} more" if more > 0 else "")
        parts.append(f"[$state-degraded][b]FLAPPING[/b] {text}[/]")
    return "  │  ".join(parts)


def _noteworthy(counts: HealthCounts, rollup: FleetRollup) -> bool:
    # Big sites (the data centers) always show; small ones only when in trouble,
    # so that 19 hospitals and clinics do not crowd the bar when all is well.
    return counts.total != counts[Health.OK] or counts.total >= rollup.fleet.total // 10


class SummaryBar(Static):
    """Counts per state for the fleet, per site and per role; hospitals and clinics hit."""

    DEFAULT_CSS = """
    SummaryBar {
        height: auto;
        max-height: 8;
        padding: 0 1;
        background: $boost;
        color: $foreground;
        border-bottom: solid $primary;
    }
    """

    _shown = ""
    rollup: FleetRollup | None = None
    connection = ""  # "" while the data is live; else why it is not (a service gone)
    links = ""  # markup of the sites' WAN link line ("" when no site declares links)
    link_trouble = False  # some site's link is down or degraded

    def show_links(self, markup: str, *, trouble: bool = False) -> None:
        """Put the sites' WAN link line under the counts (``""``: none); ``trouble``:
        some site's link is down or degraded."""
        if markup != self.links or trouble != self.link_trouble:
            self.links, self.link_trouble = markup, trouble
            if self.rollup is not None:
                self.show_rollup(self.rollup)

    def show_connection(self, text: str) -> None:
        """Put a warning above the counts (``""``: none): the numbers below are old."""
        if text != self.connection:
            self.connection = text
            if self.rollup is not None:
                self.show_rollup(self.rollup)

    def show_rollup(self, rollup: FleetRollup) -> None:
        """Redraw from a fresh roll-up."""
        self.rollup = rollup
        markup = summary_markup(rollup, link_trouble=self.link_trouble)
        if self.connection:
            markup = f"[$state-stale][b]⚠ {escape(self.connection)}[/b][/]\n{markup}"
        if self.links:
            markup = f"{markup}\n{self.links}"
        if markup != self._shown:  # an unchanged bar must not cost a layout pass
            self._shown = markup
            self.update(markup)
