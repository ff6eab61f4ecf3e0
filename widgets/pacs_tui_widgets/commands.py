"""The command palette's control-room commands (the same as the ``:`` commands)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from textual.command import DiscoveryHit, Hit, Hits, Provider


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
