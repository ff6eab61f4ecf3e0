"""The custody keys, and the question asked before many servers change custody.

Like the batch keys, the custody key lives on the container around the
grid, which only a writable control room with a custody board mounts: a
read-only room does not bind it at all. Changing custody is an operator
action and is audited by the board.
"""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Static

from pacs_tui_widgets.batch_desk import BatchDesk
from pacs_tui_widgets.modal import Modal

CUSTODY_BINDINGS: list[BindingType] = [
    Binding(
        "c",
        "app.custody_advance",
        "Advance custody one step (marked servers, else the cursor's)",
        show=False,
        id="custody.advance",
    ),
]
CUSTODY_BINDING_IDS = tuple(b.id for b in CUSTODY_BINDINGS if isinstance(b, Binding) and b.id)


class CustodyDesk(BatchDesk):
    """The batch desk plus the custody keys (writable rooms with a custody board)."""

    BINDINGS: ClassVar[list[BindingType]] = CUSTODY_BINDINGS


class CustodyPrompt(Modal[bool]):
    """Asks before a custody change of many servers; True only for ``y``."""

    DEFAULT_CSS = """
    CustodyPrompt { align: center middle; }
    CustodyPrompt > Vertical {
        width: 76; height: auto; background: $panel; border: thick $warning; padding: 1 2;
    }
    CustodyPrompt #custody-question { text-style: bold; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Change custody", id="custody.yes"),
        Binding("n,escape", "answer(False)", "Leave custody as it is", id="custody.no"),
    ]

    def __init__(self, question: str, detail: str) -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(escape(self.question), id="custody-question")
            yield Static(escape(self.detail), id="custody-detail")
            yield Static("y: yes, change and audit it    n / escape: no")

    def action_answer(self, yes: bool) -> None:
        """Close with the answer."""
        self.dismiss(yes)
