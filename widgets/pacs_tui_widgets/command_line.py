"""The ``:`` command line: ``:select``, ``:filter``, ``:group``, ``:sort``, ``:theme``...

Parsing lives here; the app carries commands out. An error stays on screen
under the input, with a caret under the offending character when the
selector parser said where it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static


@dataclass(frozen=True)
class CommandSpec:
    """One command: its name, its argument, what it does."""

    name: str
    argument: str
    help: str


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("select", "EXPR", "mark the servers a selector matches (e.g. role=archive)"),
    CommandSpec("filter", "[EXPR]", "show only matching servers (text or selector); none: all"),
    CommandSpec("group", "site|role|rack|none", "group rows (enter on a header folds it)"),
    CommandSpec("sort", "COLUMN [desc]", "sort by a column: name site role rack power ..."),
    CommandSpec("theme", "NAME", "switch theme (dark, light, wall, your own)"),
    CommandSpec("marks", "clear|down", "clear every mark, or mark every server that is DOWN"),
    CommandSpec(
        "power",
        "off|on|restart|force-off [EXPR]",
        "plan a power batch on EXPR's servers, else the marked ones (plan screen first)",
    ),
    CommandSpec(
        "ack",
        "BATCH",
        "acknowledge an interrupted batch (audited): it is no longer named",
    ),
    CommandSpec(
        "custody",
        "advance [STATE] | correct STATE REASON",
        "change the custody of the marked servers (audited; not in read-only)",
    ),
    CommandSpec(
        "baseline",
        "[BEFORE AFTER]",
        "compare two baseline files (none: the last two again); read-only rooms too",
    ),
    CommandSpec("audit", "", "show/hide the audit log pane"),
    CommandSpec("help", "", "list every key binding"),
    CommandSpec("quit", "", "leave the control room"),
)
COMMAND_NAMES = tuple(c.name for c in COMMANDS)


class CommandError(ValueError):
    """A command that cannot run; ``position`` is a column in ``text`` (or None)."""

    def __init__(self, message: str, text: str = "", position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.text = text
        self.position = position


@dataclass(frozen=True)
class ParsedCommand:
    """A command name and its argument text; ``offset`` is where the argument starts."""

    name: str
    argument: str
    offset: int


def parse_command(text: str) -> ParsedCommand:
    """Split ``select role=archive`` into name and argument (a leading ``:`` is fine)."""
    body = text[1:] if text.startswith(":") else text
    shift = len(text) - len(body)
    stripped = body.lstrip()
    shift += len(body) - len(stripped)
    if not stripped:
        raise CommandError("empty command; try :help", text, None)
    name, _, rest = stripped.partition(" ")
    if name not in COMMAND_NAMES:
        raise CommandError(
            f"unknown command {name!r}; commands: {', '.join(COMMAND_NAMES)}", text, shift
        )
    argument = rest.strip()
    offset = shift + len(name) + 1 + (len(rest) - len(rest.lstrip()))
    return ParsedCommand(name, argument, offset)


def error_markup(error: CommandError) -> str:
    """The error text, with the command and a caret line when the position is known."""
    if error.position is None or not error.text:
        return f"[b]✖[/b] {escape(error.message)}"
    pointer = " " * error.position + "^"
    return f"{escape(error.text)}\n{pointer} {escape(error.message)}"


class CommandLine(Vertical):
    """An input for ``:`` commands with an inline error line."""

    DEFAULT_CSS = """
    CommandLine { height: auto; dock: bottom; background: $panel; display: none; }
    /* Docked at the bottom like the footer, which would cover its last line. */
    CommandLine { margin-bottom: 1; }
    CommandLine.-open { display: block; }
    CommandLine Input { border: tall $accent; }
    CommandLine #command-error { color: $state-down; padding: 0 1; display: none; }
    CommandLine.-error #command-error { display: block; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="command.close"),
    ]

    class Submitted(Message):
        """The user entered a command."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Closed(Message):
        """The command line was closed."""

    def compose(self) -> ComposeResult:
        yield Input(placeholder=":command   (try :help)", id="command-input", select_on_focus=False)
        yield Static("", id="command-error")

    @property
    def input(self) -> Input:
        """The text input."""
        return self.query_one("#command-input", Input)

    def open(self) -> None:
        """Show the command line with ``:`` typed and focus it."""
        self.add_class("-open")
        self.clear_error()
        self.input.value = ":"
        self.input.cursor_position = 1
        self.input.focus()

    def action_close(self) -> None:
        """Hide the command line and give the focus back to the grid."""
        self.remove_class("-open")
        self.clear_error()
        self.post_message(self.Closed())

    def show_error(self, error: CommandError) -> None:
        """Show an error under the input; the command line stays open."""
        self.query_one("#command-error", Static).update(error_markup(error))
        self.add_class("-error")

    def clear_error(self) -> None:
        """Remove the error line."""
        self.query_one("#command-error", Static).update("")
        self.remove_class("-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Submitted(event.value))
