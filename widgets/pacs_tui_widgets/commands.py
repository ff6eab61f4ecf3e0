"""The command palette's control-room commands (the same as the ``:`` commands)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Protocol

from textual.command import DiscoveryHit, Hit, Hits, Provider

from pacs_tui_widgets.fleet_rows import GROUP_KEYS

if TYPE_CHECKING:
    from pacs_tui_widgets.app import ControlRoomApp


@dataclass(frozen=True)
class PaletteCommand:
    """One palette entry: the text shown, a help line, and the ``:`` command it runs."""

    title: str
    help: str
    command: str


class RunsCommands(Protocol):
    """What the provider needs from the app."""

    def palette_commands(self) -> list[PaletteCommand]: ...

    def run_command_text(self, text: str) -> None: ...


class ControlRoomCommands(Provider):
    """Offers grouping, sorting, themes, marks, help and quit in the palette."""

    def _entries(self) -> list[tuple[PaletteCommand, Callable[[], None]]]:
        app = self.app
        if not hasattr(app, "palette_commands"):
            return []
        runner: RunsCommands = app  # type: ignore[assignment]
        return [
            (entry, partial(runner.run_command_text, entry.command))
            for entry in runner.palette_commands()
        ]

    async def discover(self) -> Hits:
        for entry, run in self._entries():
            yield DiscoveryHit(entry.title, run, help=entry.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for entry, run in self._entries():
            score = matcher.match(entry.title)
            if score > 0:
                yield Hit(score, matcher.highlight(entry.title), run, help=entry.help)


def palette_entries(app: ControlRoomApp) -> list[PaletteCommand]:
    """The commands the palette offers (each is a ``:`` command)."""
    entries = [
        PaletteCommand(f"Group by {key}", f"group rows by {key}", f"group {key}")
        for key in GROUP_KEYS
    ]
    entries.append(PaletteCommand("Ungroup", "a flat list", "group none"))
    entries += [
        PaletteCommand(f"Sort by {column}", f"sort rows by {column}", f"sort {column}")
        for column in app.columns
    ]
    entries += [
        PaletteCommand(f"Theme: {name}", f"switch to the {name} theme", f"theme {name}")
        for name in app.theme_names
    ]
    entries += [
        PaletteCommand("Clear filter", "show every server", "filter"),
        PaletteCommand("Clear marks", "unmark every server", "marks clear"),
        PaletteCommand("Mark DOWN servers", "mark every server that is down now", "marks down"),
        PaletteCommand("Key bindings", "list every binding and command", "help"),
        PaletteCommand("Audit log", "show/hide the audit pane", "audit"),
        PaletteCommand(
            "Baseline comparison",
            "re-read and show the last :baseline BEFORE AFTER"
            if app.baseline_files is not None
            else "type :baseline BEFORE.json AFTER.json to compare two captures",
            "baseline",
        ),
    ]
    if not app.read_only:
        entries += [
            PaletteCommand(title, f"plan {verb} on the marked servers", f"power {verb}")
            for title, verb in (
                ("Power off marked servers", "off"),
                ("Power on marked servers", "on"),
                ("Restart marked servers", "restart"),
                ("FORCE off marked servers", "force-off"),
            )
        ]
    if app.custody is not None:
        entries.append(
            PaletteCommand(
                "Advance custody", "one custody step for the marked servers", "custody advance"
            )
        )
    return entries
