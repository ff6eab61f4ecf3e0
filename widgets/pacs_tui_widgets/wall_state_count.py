"""A big number for one health state: its name, its glyph, and the count in ``Digits``."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Digits, Static

from pacs_tui.plugin_api import Health
from pacs_tui.rollup import HEALTH_WORDS
from pacs_tui_themes import STATE_GLYPHS


class WallStateCount(Widget):
    """How many servers are in one state, readable from across the room.

    A non-zero count of DOWN or UNREACHABLE servers turns the whole box into
    a solid block of the state's colour (class ``-alarm``).
    """

    DEFAULT_CSS = """
    WallStateCount {
        width: 1fr;
        height: auto;
        padding: 0 1;
        border: heavy $state-unknown;
        color: $state-unknown;
        background: $surface;
    }
    WallStateCount > .wall-state-label {
        width: 1fr;
        text-style: bold;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    WallStateCount > Digits {
        width: auto;
    }
    WallStateCount.-ok { border: heavy $state-ok; color: $state-ok; }
    WallStateCount.-degraded { border: heavy $state-degraded; color: $state-degraded; }
    WallStateCount.-down { border: heavy $state-down; color: $state-down; }
    WallStateCount.-unreachable { border: heavy $state-unreachable; color: $state-unreachable; }
    WallStateCount.-stale { border: heavy $state-stale; color: $state-stale; }
    WallStateCount.-zero { border: heavy $panel; }
    WallStateCount.-down.-alarm { background: $state-down; color: $background; }
    WallStateCount.-unreachable.-alarm { background: $state-unreachable; color: $background; }
    """

    ALARMING = (Health.DOWN, Health.UNREACHABLE)

    def __init__(self, health: Health, *, id: str | None = None) -> None:
        super().__init__(id=id, classes=f"-{health.value} -zero")
        self.health = health
        # Held, not queried: the wall may update it before or after it is mounted.
        self._digits = Digits("0")

    def compose(self) -> ComposeResult:
        label = f"{STATE_GLYPHS[self.health.value]} {HEALTH_WORDS[self.health].upper()}"
        yield Static(label, classes="wall-state-label")
        yield self._digits

    @property
    def count(self) -> int:
        """The number shown."""
        return int(self._digits.value)

    def show(self, count: int) -> None:
        """Show ``count`` (redraws only when it changed)."""
        if self._digits.value != str(count):
            self._digits.update(str(count))
        self.set_class(count == 0, "-zero")
        self.set_class(count > 0 and self.health in self.ALARMING, "-alarm")
