"""One line per site (or server group): its worst state, name, and how many are up."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.markup import escape
from textual.widget import Widget
from textual.widgets import Static

from pacs_tui.plugin_api import Health
from pacs_tui.rollup import HealthCounts, ServiceLevel
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

    def compose(self) -> ComposeResult:
        return iter(())

    def show(self, rows: Sequence[tuple[str, HealthCounts, ServiceLevel | None]]) -> None:
        """Show one tile per ``(label, counts, service)``; rebuilt only when the labels change.

        ``service`` is the site's PACS service when it is affected: a site whose
        own servers all answer can still have no service behind a down router.
        """
        self.texts = [tile_text(label, counts, service) for label, counts, service in rows]
        labels = tuple(label for label, _, _ in rows)
        if labels != self._labels:
            self._labels = labels
            self.remove_children()
            self._tiles = [Static(text, classes="wall-site-tile") for text in self.texts]
            self.mount_all(self._tiles)
            return
        for tile, text in zip(self._tiles, self.texts, strict=True):
            tile.update(text)


def tile_text(label: str, counts: HealthCounts, service: ServiceLevel | None = None) -> str:
    """The markup of one tile."""
    state = worst(counts)
    text = f"{escape(label)} {counts[Health.OK]}/{counts.total} up"
    if service is not None:
        floor = Health.DOWN if service is ServiceLevel.NONE else Health.DEGRADED
        state = max(state, floor, key=lambda h: h.rank)
        text += " · no service" if service is ServiceLevel.NONE else " · degraded"
    return state_markup(state, text, bold=state is Health.DOWN)
