"""One line per site (or server group): its worst state, name, how many are up, its link.

With a ``LinkState`` in ``links`` (``pacs_tui.links``), a hospital's or
clinic's tile also says when its WAN link is not ok (``· LINK DOWN``,
``· link degraded``, ``· link ?``) and takes the worse of the two states.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.markup import escape
from textual.widget import Widget
from textual.widgets import Static

from pacs_tui.links import LinkReading, SiteLinkState
from pacs_tui.plugin_api import Health
from pacs_tui.rollup import HealthCounts, ServiceLevel
from pacs_tui_widgets.site_links import LINK_HEALTH, LINK_WORDS
from pacs_tui_widgets.wall_markup import state_markup, worst


class WallSiteTiles(Widget):
    """A grid of site tiles, e.g. ``✖ clinic-oakwood 0/1 up``, coloured by the worst state."""

    DEFAULT_CSS = """
    WallSiteTiles {
        layout: grid;
        grid-size: 3;
        grid-gutter: 0 2;
        height: auto;
        padding: 0 1;
    }
    WallSiteTiles > .wall-site-tile {
        height: 1;
        width: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._labels: tuple[str, ...] = ()
        self._tiles: list[Static] = []
        self.texts: list[str] = []
        # The sites' link state, set by the screen that owns a LinkState; read on every show.
        self.links: LinkReading | None = None

    def compose(self) -> ComposeResult:
        return iter(())

    def show(self, rows: Sequence[tuple[str, HealthCounts, ServiceLevel | None]]) -> None:
        """Show one tile per ``(label, counts, service)``; rebuilt only when the labels change.

        ``service`` is the site's PACS service when it is affected: a site whose
        own servers all answer can still have no service behind a down router.
        """
        links = self.links
        self.texts = [
            tile_text(
                label,
                counts,
                service,
                link=links.site(label).state
                if links is not None and label in links.sites
                else None,
            )
            for label, counts, service in rows
        ]
        labels = tuple(label for label, _, _ in rows)
        if labels != self._labels:
            self._labels = labels
            self.remove_children()
            self._tiles = [Static(text, classes="wall-site-tile") for text in self.texts]
            self.mount_all(self._tiles)
            return
        for tile, text in zip(self._tiles, self.texts, strict=True):
            tile.update(text)


def tile_text(
    label: str,
    counts: HealthCounts,
    service: ServiceLevel | None = None,
    *,
    link: SiteLinkState | None = None,
) -> str:
    """The markup of one tile; ``link`` is the site's link state (None: no links declared)."""
    state = worst(counts)
    text = f"{escape(label)} {counts[Health.OK]}/{counts.total} up"
    if service is not None:
        floor = Health.DOWN if service is ServiceLevel.NONE else Health.DEGRADED
        state = max(state, floor, key=lambda h: h.rank)
        text += " · no service" if service is ServiceLevel.NONE else " · degraded"
    if link is not None and link != "ok":
        # An unknown link colours a healthy tile as unknown: its service is not proven.
        state = max(state, LINK_HEALTH[link], key=lambda h: h.rank)
        text += f" · {LINK_WORDS[link]}"
    return state_markup(state, text, bold=state is Health.DOWN)
