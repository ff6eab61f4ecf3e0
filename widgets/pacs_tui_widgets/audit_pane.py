"""The audit pane: the latest audit-log events, newest first.

It reads the same SQLite log the batch engine writes (``AuditLog``), once
a second while visible, and only the rows added since the last read. The
log is append-only and redacted by the engine; the pane only shows it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.color import Color
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from pacs_tui.batch.audit import AuditEvent, AuditLog, event_line, utc_stamp

REFRESH_S = 1.0
KEEP = 300  # events kept on screen
FIRST_LOOK_BACK = timedelta(days=7)
_BAD_OUTCOMES = ("failed", "refused", "declined", "timeout", "aborting", "halted", "incomplete")

AuditSource = Callable[[], AuditLog | None]


class AuditPane(Vertical):
    """Recent audit events; ``source`` returns the log (None: there is none yet)."""

    DEFAULT_CSS = """
    AuditPane {
        height: 12; display: none;
        border-top: heavy $accent; background: $surface; padding: 0 1;
    }
    AuditPane #audit-title { text-style: bold; color: $accent; height: 1; }
    AuditPane #audit-scroll { height: 1fr; scrollbar-size-vertical: 1; }
    """

    def __init__(self, source: AuditSource, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.source = source
        self.events: deque[AuditEvent] = deque(maxlen=KEEP)
        self._last_id = 0
        self._last_ts: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("Audit log (newest first)", id="audit-title")
        with VerticalScroll(id="audit-scroll"):
            yield Static("", id="audit-lines")

    def on_mount(self) -> None:
        self.set_interval(REFRESH_S, self.reload, name="audit-pane")

    def toggle(self) -> None:
        """Show (and read now) or hide the pane."""
        self.display = not self.display
        if self.display:
            self.reload()

    def reload(self) -> None:
        """Read the rows added since the last read and redraw if there were any."""
        if not self.display:
            return
        log = self.source()
        title = self.query_one("#audit-title", Static)
        if log is None:
            title.update("Audit log: none yet (no batch has been planned on this machine)")
            return
        title.update(f"Audit log (newest first) · {log.path}")
        since = self._last_ts or utc_stamp(datetime.now(UTC) - FIRST_LOOK_BACK)
        fresh = [e for e in log.iter_events(since=since) if e.id > self._last_id]
        if not fresh and self._last_ts is not None:
            return
        for event in fresh:
            self.events.append(event)
        if fresh:
            self._last_id = fresh[-1].id
            self._last_ts = fresh[-1].ts
        else:
            self._last_ts = since
        self._draw()

    def _draw(self) -> None:
        bad = self._style("state-down")
        text = Text()
        for event in reversed(self.events):
            style = bad if event.outcome in _BAD_OUTCOMES else Style()
            text.append(event_line(event) + "\n", style=style)
        if not self.events:
            text.append("no events yet")
        self.query_one("#audit-lines", Static).update(text)

    def _style(self, variable: str) -> Style:
        value = self.app.get_css_variables().get(variable)
        try:
            return Style(color=Color.parse(value).rich_color, bold=True)
        except Exception:  # an exotic theme: the outcome word still says it
            return Style(bold=True)
