"""The names of the servers that are down (and, apart, those cut off behind them)."""

from __future__ import annotations

from collections.abc import Sequence

from textual.markup import escape
from textual.widgets import Static

from pacs_tui.plugin_api import Health
from pacs_tui_widgets.wall_markup import state_markup

MAX_NAMES = 40  # beyond this the wall says "+N more": a wall is not a list view


class WallDownList(Static):
    """``✖ DOWN (2): rtr-003 stor-011`` and ``⊘ UNREACHABLE (5): …`` on a wall page."""

    DEFAULT_CSS = """
    WallDownList {
        width: 1fr;
        height: auto;
        padding: 0 1;
        border-title-color: $state-down;
        border-title-style: bold;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.down: tuple[str, ...] = ()
        self.unreachable: tuple[str, ...] = ()
        self._fresh: bool | None = None

    def show(self, down: Sequence[str], unreachable: Sequence[str], *, fresh: bool = True) -> None:
        """Show these servers (redraws only when something changed).

        With old data (``fresh`` false) an empty list is not good news: it says so.
        """
        lists = (tuple(down), tuple(unreachable))
        if self._fresh == fresh and lists == (self.down, self.unreachable):
            return
        self._fresh = fresh
        self.down, self.unreachable = lists
        if not down and not fresh:
            lines = [state_markup(Health.STALE, "no fresh data: cannot tell", bold=True)]
        else:
            lines = [_line(Health.DOWN, "DOWN", self.down)]
        if self.unreachable:
            lines.append(_line(Health.UNREACHABLE, "UNREACHABLE", self.unreachable))
        self.update("\n".join(lines))


def _line(health: Health, word: str, names: Sequence[str]) -> str:
    if not names:
        return state_markup(Health.OK, "no server is down", bold=True)
    shown = "  ".join(escape(n) for n in names[:MAX_NAMES])
    more = f"  +{len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
    return state_markup(health, f"{word} ({len(names)}):", bold=True) + f" {shown}{more}"
