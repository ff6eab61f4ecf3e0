"""The event log pane, and the coalescing of DOWN notices into few toasts.

Only changes that matter are logged: a server changing health after its
first reading, plugin failures, commands. When a rack dies, 40 servers go
DOWN within seconds; the room needs one toast saying so, not 40.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from rich.style import Style
from rich.text import Text
from textual.color import Color
from textual.widgets import RichLog

from pacs_tui.plugin_api import Health
from pacs_tui_widgets.health_style import glyph

MAX_LINES_PER_BATCH = 12  # beyond this, one summary line per batch
NAMES_IN_TOAST = 5


def clock_text(when: float) -> str:
    """``HH:MM:SS`` in local time."""
    return time.strftime("%H:%M:%S", time.localtime(when))


class DownNotices:
    """Collects servers that went DOWN; ``flush`` turns them into one toast text."""

    def __init__(self) -> None:
        self.pending: list[str] = []

    def add(self, server: str) -> None:
        """Note that ``server`` went DOWN."""
        if server not in self.pending:
            self.pending.append(server)

    def flush(self) -> str | None:
        """One message for everything collected since the last flush (None: nothing)."""
        if not self.pending:
            return None
        names, self.pending = self.pending, []
        if len(names) == 1:
            return f"{names[0]} is DOWN"
        shown = ", ".join(names[:NAMES_IN_TOAST])
        more = f" and {len(names) - NAMES_IN_TOAST} more" if len(names) > NAMES_IN_TOAST else ""
        return f"{len(names)} servers went DOWN: {shown}{more}"


class EventLog(RichLog):
    """Timestamped log of state changes and notices."""

    DEFAULT_CSS = """
    EventLog {
        height: 7;
        border-top: solid $primary;
        background: $surface;
        padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=2000, markup=True, wrap=False, auto_scroll=True)
        self._styles: dict[tuple[str, Health], Style] = {}

    def note(self, when: float, text: str, health: Health | None = None) -> None:
        """Log one line (``text`` is plain text, not markup)."""
        line = Text(clock_text(when), style="dim")
        line.append(" ")
        if health is None:
            line.append("  ")
        else:
            line.append(f"{glyph(health)} ", style=self._state_style(health))
        line.append(text)
        self.write(line)

    def _state_style(self, health: Health) -> Style:
        # Resolving the theme's variables costs ~1 ms: once per theme and state.
        key = (self.app.theme, health)
        style = self._styles.get(key)
        if style is None:
            style = self._styles[key] = self._resolve_state_style(health)
        return style

    def _resolve_state_style(self, health: Health) -> Style:
        # RichLog writes Rich text, which cannot refer to theme variables: resolve now.
        value = self.app.get_css_variables().get(f"state-{health}")
        if value is None:
            return Style(bold=True)
        try:
            return Style(color=Color.parse(value).rich_color, bold=True)
        except Exception:  # an exotic colour expression: the glyph still says it
            return Style(bold=True)

    def health_changes(self, when: float, changes: Mapping[str, tuple[Health, Health]]) -> None:
        """Log health transitions (a first reading that is OK is not news).

        Servers whose data only came back (STALE → OK: after a reconnection,
        hundreds at once, spread over seconds) share one line per call, so
        the news around them stays in the log's few visible lines.
        """
        fresh_again = [s for s, (b, a) in changes.items() if b is Health.STALE and a is Health.OK]
        if fresh_again:
            names = ", ".join(fresh_again[:5]) + (" …" if len(fresh_again) > 5 else "")
            self.note(when, f"{len(fresh_again)} server(s) fresh again: {names}", Health.OK)
        items = [
            (s, b, a)
            for s, (b, a) in changes.items()
            if not (b is Health.UNKNOWN and a is Health.OK)
            and not (b is Health.STALE and a is Health.OK)
        ]
        for server, before, after in items[:MAX_LINES_PER_BATCH]:
            self.note(when, f"{server}: {before} → {after}", after)
        if len(items) > MAX_LINES_PER_BATCH:
            worse = sum(1 for _, b, a in items if a.rank > b.rank)
            self.note(
                when,
                f"… and {len(items) - MAX_LINES_PER_BATCH} more changes "
                f"({worse} of {len(items)} got worse)",
            )
