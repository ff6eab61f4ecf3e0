"""The control room's move line, under the summary: phase, clock against plan, custody."""

from __future__ import annotations

from textual.widgets import Static

from pacs_tui_widgets.move_status import MoveStatus


class MoveBar(Static):
    """``PHASE Shutdown waves · behind by 12 min │ CUSTODY ● 20 running · → 4 in-transit``."""

    DEFAULT_CSS = """
    MoveBar {
        height: auto;
        padding: 0 1;
        background: $boost;
        color: $foreground;
        border-bottom: solid $primary;
    }
    """

    _shown = ""

    def show(self, move: MoveStatus) -> None:
        """Redraw from ``move`` (only when the text changed)."""
        markup = move.markup()
        if self.display != bool(markup):
            self.display = bool(markup)
        if markup != self._shown:
            self._shown = markup
            self.update(markup)

    @property
    def text(self) -> str:
        """The markup on show (tests read it)."""
        return self._shown
