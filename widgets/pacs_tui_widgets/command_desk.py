"""Carrying out ``:`` commands (typed, or chosen in the palette).

``command_line`` parses a line and shows errors; this module does what the
command says, or raises ``CommandError`` with the column to point at.
Batch and custody commands are handed to their desks.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from pacs_tui.baseline.model import BaselineError
from pacs_tui.plugin_api import Health
from pacs_tui.selector import SelectorError, compile_selector
from pacs_tui_widgets.baseline_screen import BaselineScreen, load_view
from pacs_tui_widgets.command_line import CommandError, parse_command
from pacs_tui_widgets.fleet_rows import GROUP_KEYS

if TYPE_CHECKING:
    from pacs_tui_widgets.app import ControlRoomApp


class CommandDesk:
    """Runs the control room's ``:`` commands."""

    def __init__(self, app: ControlRoomApp) -> None:
        self.app = app

    def execute(self, text: str) -> None:
        """Carry out one ``:`` command; ``CommandError`` says what was wrong."""
        command = parse_command(text)
        arg = command.argument
        now = self.app.state.clock()
        if command.name == "select":
            if not arg:
                raise CommandError("select needs a selector, e.g. :select role=archive", text)
            kinds = {name: site.kind for name, site in self.app.inventory.sites.items()}
            try:
                predicate = compile_selector(arg, kinds)
            except SelectorError as exc:
                raise CommandError(exc.reason, text, command.offset + exc.position) from exc
            chosen = [name for name, server in self.app.servers.items() if predicate(server)]
            self.app.grid.set_marks(chosen)
            self.app.events.note(now, f":select {arg} marked {len(chosen)} servers")
        elif command.name == "filter":
            try:
                self.app.set_filter(arg)
            except SelectorError as exc:
                raise CommandError(exc.reason, text, command.offset + exc.position) from exc
        elif command.name == "group":
            if arg not in (*GROUP_KEYS, "none"):
                raise CommandError(
                    f"group by {' | '.join(GROUP_KEYS)} | none", text, command.offset
                )
            self.app.grid.set_group(None if arg == "none" else arg)
        elif command.name == "sort":
            column, _, order = arg.partition(" ")
            reverse = column.startswith("-") or order.strip() in ("desc", "reverse")
            column = column.lstrip("-")
            if column not in self.app.columns:
                columns = ", ".join(self.app.columns)
                raise CommandError(f"sort by one of {columns}", text, command.offset)
            self.app.grid.set_sort(column, reverse)
        elif command.name == "theme":
            if arg not in self.app.available_themes:
                names = ", ".join(sorted(self.app.theme_names or self.app.available_themes))
                raise CommandError(f"no theme {arg!r}; themes: {names}", text, command.offset)
            self.app.theme = arg
        elif command.name == "marks":
            if arg == "clear":
                self.app.grid.set_marks(())
            elif arg == "down":
                down = [n for n, h in self.app.health.by_server.items() if h is Health.DOWN]
                self.app.grid.set_marks(down)
                self.app.events.note(now, f":marks down marked {len(down)} servers")
            else:
                raise CommandError("try :marks clear or :marks down", text, command.offset)
        elif command.name == "power":
            self.app.batch.power_command(text, arg, command.offset)
        elif command.name == "ack":
            self.app.batch.ack_command(text, arg, command.offset)
        elif command.name == "custody":
            self.app.custody_control.command(text, arg, command.offset)
        elif command.name == "baseline":
            self.baseline_command(text, arg, command.offset)
        elif command.name == "audit":
            self.app.action_audit()
        elif command.name == "help":
            self.app.action_help()
        elif command.name == "quit":
            self.app.exit(0)

    def baseline_command(self, text: str, arg: str, offset: int) -> None:
        usage = "try :baseline BEFORE.json AFTER.json"
        if not arg:
            if self.app.baseline_files is None:
                raise CommandError(f"no baseline compared yet; {usage}", text, offset)
            words, starts = [str(p) for p in self.app.baseline_files], [offset, offset]
        else:
            try:
                words = shlex.split(arg)
            except ValueError as exc:  # an unclosed quote
                raise CommandError(f"{exc}; {usage}", text, offset) from exc
            if len(words) != 2:
                raise CommandError(f"two files are needed, got {len(words)}; {usage}", text, offset)
            # Where each file was typed, so the caret points at the bad one.
            second = arg.rfind(words[1])
            starts = [offset, offset + second if second > 0 else offset]
        paths = [Path(w).expanduser() for w in words]
        try:
            self.app.open_baseline(paths[0], paths[1])
        except BaselineError as exc:
            where = starts[1] if exc.path == paths[1] and exc.path != paths[0] else starts[0]
            raise CommandError(str(exc), text, where) from exc

    def open_baseline(self, before: Path, after: Path) -> BaselineScreen:
        """Load, compare and show two baseline files; ``BaselineError`` when one is bad."""
        view = load_view(before, after)
        self.app.baseline_files = (before, after)
        screen = BaselineScreen(view)
        self.app.push_screen(screen)
        verdict = "same or better" if view.comparison.ok else "NOT PROVEN"
        self.app.events.note(
            self.app.state.clock(),
            f"baseline {before.name} → {after.name}: {verdict} "
            f"({len(view.comparison.problems())} problem(s))",
            Health.OK if view.comparison.ok else Health.DEGRADED,
        )
        return screen
