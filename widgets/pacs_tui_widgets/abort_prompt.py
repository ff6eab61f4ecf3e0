"""The question before a running batch is aborted: ``y`` aborts, anything else keeps it."""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Static

from pacs_tui_widgets.modal import Modal


class AbortPrompt(Modal[bool]):
    """Asks to confirm an abort; dismisses with True only for ``y``."""

    DEFAULT_CSS = """
    AbortPrompt { align: center middle; }
    AbortPrompt > Vertical {
        width: 72; height: auto; background: $panel; border: thick $state-down; padding: 1 2;
    }
    AbortPrompt #abort-question { text-style: bold; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Abort the batch", id="abort.yes"),
        Binding("n,escape", "answer(False)", "Keep it running", id="abort.no"),
    ]

    def __init__(self, description: str) -> None:
        super().__init__()
        self.description = description

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Abort {escape(self.description)}?", id="abort-question")
            yield Static(
                "No new step will be issued; calls in flight finish and are recorded.\n"
                "y: abort    n / escape: keep it running"
            )

    def action_answer(self, abort: bool) -> None:
        """Close with the answer."""
        self.dismiss(abort)
