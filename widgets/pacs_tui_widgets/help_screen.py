"""The ``?`` screen: every binding with its id and its current keys.

Generated from the ``BINDINGS`` of the classes themselves plus the user's
keymap, so it can never list a key that does not work (or miss one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from pacs_tui_widgets.command_line import COMMANDS
from pacs_tui_widgets.modal import Modal


@dataclass(frozen=True)
class BindingRow:
    """One line of the help: where it applies, its id, keys and what it does."""

    scope: str
    binding_id: str
    keys: str
    description: str


def binding_rows(
    scoped: Iterable[tuple[str, Sequence[BindingType]]], keymap: Mapping[str, str]
) -> list[BindingRow]:
    """Rows for every ``Binding`` with an id; keys as the keymap has remapped them."""
    rows = []
    for scope, bindings in scoped:
        for binding in bindings:
            if not isinstance(binding, Binding) or binding.id is None:
                continue
            keys = keymap.get(binding.id, binding.key)
            rows.append(BindingRow(scope, binding.id, keys, binding.description or binding.action))
    return rows


def _key_text(keys: str) -> str:
    names = {"slash": "/", "colon": ":", "question_mark": "?", "space": "space"}
    return ", ".join(names.get(k.strip(), k.strip()) for k in keys.split(","))


class HelpScreen(Modal[None]):
    """Lists every key binding and every ``:`` command."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90; max-width: 95%; height: 90%;
        background: $panel; border: thick $primary; padding: 0 1;
    }
    HelpScreen .help-title { text-style: bold; color: $accent; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close help", id="help.close"),
    ]

    def __init__(self, rows: Sequence[BindingRow], read_only: bool, reason: str = "") -> None:
        super().__init__()
        self.rows = list(rows)
        self.read_only = read_only
        self.reason = reason  # why (the viewer token, --read-only, the inventory)

    def compose(self) -> ComposeResult:
        keys = Table(box=None, expand=True, pad_edge=False)
        keys.add_column("keys", style="bold", no_wrap=True)
        keys.add_column("binding id", no_wrap=True)
        keys.add_column("what it does")
        for row in self.rows:
            keys.add_row(_key_text(row.keys), row.binding_id, row.description)
        commands = Table(box=None, expand=True, pad_edge=False)
        commands.add_column("command", style="bold", no_wrap=True)
        commands.add_column("what it does")
        for command in COMMANDS:
            commands.add_row(f":{command.name} {command.argument}".rstrip(), command.help)
        mode = (
            "READ-ONLY session: nothing here can change a server"
            + (f" ({self.reason}); the batch keys are not bound." if self.reason else ".")
            if self.read_only
            else ""
        )
        with VerticalScroll():
            yield Static("Keys  (remap by id under keymap: in config.yaml)", classes="help-title")
            yield Static(keys, id="help-bindings")
            yield Static("\nCommands", classes="help-title")
            yield Static(commands, id="help-commands")
            yield Static(f"\n{mode}\nEscape closes this help.")

    async def action_dismiss(self, result: None = None) -> None:
        """Close the help."""
        self.dismiss(result)
