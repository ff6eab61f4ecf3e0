"""The wall's move-weekend section: the phase, the clock against plan, custody counts.

When the board file turns bad the counts of the last good read stay, marked,
under a line saying why the file is not read (the wall never stops for it).
"""

from __future__ import annotations

from textual.markup import escape
from textual.widgets import Static

from pacs_tui.custody import CUSTODY_ORDER
from pacs_tui.plugin_api import Health
from pacs_tui_widgets.move_status import CUSTODY_GLYPH, MoveStatus
from pacs_tui_widgets.wall_markup import state_markup


class WallMove(Static):
    """``PHASE Shutdown waves · behind by 12 min`` over ``● 20 running  → 4 in-transit``."""

    DEFAULT_CSS = """
    WallMove {
        width: 1fr;
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.text = ""

    def show(self, move: MoveStatus) -> None:
        """Redraw from ``move`` (only when the text changed)."""
        lines = []
        phase = move.phase_text()
        if phase:
            clock = move.clock()
            late = clock is not None and clock.slip_min >= 1
            health = Health.DEGRADED if late else Health.OK
            lines.append(state_markup(health, f"PHASE {escape(phase)}", bold=True))
        if move.has_board:
            counts = move.counts()
            problem = move.board_problem_text()
            lines.append(
                ("CUSTODY (last good read)  " if problem else "CUSTODY  ")
                + "   ".join(f"[b]{CUSTODY_GLYPH[s]} {counts[s]}[/b] {s}" for s in CUSTODY_ORDER)
            )
            if problem:
                lines.append(state_markup(Health.DOWN, escape(problem), bold=True))
        text = "\n".join(lines)
        if text != self.text:
            self.text = text
            self.update(text)
