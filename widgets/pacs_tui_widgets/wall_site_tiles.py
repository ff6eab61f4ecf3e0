"""One line per site (or server group): its worst state, name, and how many are up."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.markup import escape
from textual.widget import Widget
from textual.widgets import Static

from pacs_tui.plugin_api import Health
from pacs_tui.rollup import HealthCounts
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

    def show(self, rows: Sequence[tuple[str, HealthCounts]]) -> None:
        """Show one tile per ``(label, counts)``; rebuilt only when the labels change."""
        self.texts = [tile_text(label, counts) for label, counts in rows]
        labels = tuple(label for label, _ in rows)
        if labels != self._labels:
            self._labels = labels
            self.remove_children()
            self._tiles = [Static(text, classes="wall-site-tile") for text in self.texts]
            self.mount_all(self._tiles)
            return
        for tile, text in zip(self._tiles, self.texts, strict=True):
            tile.update(text)


def tile_text(label: str, counts: HealthCounts) -> str:
    """The markup of one tile."""
    state = worst(counts)
    up = counts[Health.OK]
    return state_markup(state, f"{escape(label)} {up}/{counts.total} up", bold=state is Health.DOWN)
