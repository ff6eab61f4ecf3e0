"""The ``/`` filter: text or a selector expression, applied as you type.

A letter reaches the grid on the screen within the keystroke (a watcher on
the input, called as the value changes), so the frame that echoes it shows
the filtered rows too: the message path alone (the input's ``Changed``, then
the bar's) let a frame with the old rows go out first, and the new rows came
one frame, ~25 ms, later. The bar's ``Changed`` still goes out: the app shows
a bad selector's caret, closes the bar on enter, and applies the text (the grid
leaves an unchanged filter as it is).
"""

from __future__ import annotations

import contextlib
from typing import ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from pacs_tui.selector import SelectorError
from pacs_tui_widgets.fleet_grid import FleetGrid


class FilterBar(Vertical):
    """An input that filters the grid live; a bad selector shows a caret, inline."""

    DEFAULT_CSS = """
    FilterBar { height: auto; dock: bottom; background: $panel; display: none; }
    /* Docked at the bottom like the footer, which would cover its last line. */
    FilterBar { margin-bottom: 1; }
    FilterBar.-open { display: block; }
    FilterBar Input { border: tall $accent; }
    FilterBar #filter-error { color: $state-down; padding: 0 1; display: none; }
    FilterBar.-error #filter-error { display: block; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Clear filter", id="filter.cancel"),
    ]

    class Changed(Message):
        """The filter text changed (``final``: the user pressed enter)."""

        def __init__(self, text: str, final: bool) -> None:
            super().__init__()
            self.text = text
            self.final = final

    class Cancelled(Message):
        """The user left the filter with escape: clear it."""

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="/ filter: text, or a selector like role=archive & site=dc-*",
            select_on_focus=False,
        )
        yield Static("", id="filter-error")

    def on_mount(self) -> None:
        self.watch(self.input, "value", self._filter_now, init=False)

    def _filter_now(self, text: str) -> None:
        for grid in self.screen.query(FleetGrid):
            with contextlib.suppress(SelectorError):  # the app shows where, on Changed
                grid.set_filter(text)

    @property
    def input(self) -> Input:
        """The text input."""
        return self.query_one(Input)

    def open(self, text: str = "") -> None:
        """Show and focus the filter input."""
        self.add_class("-open")
        self.input.value = text
        self.input.cursor_position = len(text)
        self.input.focus()

    def close(self) -> None:
        """Hide the bar (the filter stays applied)."""
        self.remove_class("-open")

    def show_error(self, text: str, position: int, reason: str) -> None:
        """Point at the offending character of a bad selector."""
        self.query_one("#filter-error", Static).update(
            f"{escape(text)}\n{' ' * position}^ {escape(reason)}"
        )
        self.add_class("-error")

    def clear_error(self) -> None:
        """Remove the error line."""
        self.remove_class("-error")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(event.value, final=False))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Changed(event.value, final=True))

    def action_cancel(self) -> None:
        """Clear the filter and close the bar."""
        self.clear_error()
        self.close()
        self.post_message(self.Cancelled())
