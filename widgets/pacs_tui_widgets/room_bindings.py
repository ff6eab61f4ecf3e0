"""Every key binding of the control room, by where it applies (for help and the keymap).

Generated from the ``BINDINGS`` of the classes themselves, so the help screen
and the keymap check can never list a key that is not bound there (or miss one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from textual.binding import BindingType

from pacs_tui_widgets.abort_prompt import AbortPrompt
from pacs_tui_widgets.baseline_screen import BaselineScreen
from pacs_tui_widgets.batch_desk import BATCH_BINDING_IDS, BatchDesk
from pacs_tui_widgets.command_line import CommandLine
from pacs_tui_widgets.custody_desk import CUSTODY_BINDING_IDS, CUSTODY_BINDINGS, CustodyPrompt
from pacs_tui_widgets.filter_bar import FilterBar
from pacs_tui_widgets.fleet_grid import FleetGrid
from pacs_tui_widgets.help_screen import BindingRow, HelpScreen, binding_rows
from pacs_tui_widgets.plan_screen import PlanScreen

# Batch and custody ids are known even where they are not bound: a keymap naming
# them in a read-only room is not a typo.
ALWAYS_KNOWN_IDS = frozenset(
    {*BATCH_BINDING_IDS, *CUSTODY_BINDING_IDS, "custody.yes", "custody.no"}
)


def room_binding_rows(
    app_bindings: Sequence[BindingType],
    keymap: Mapping[str, str],
    *,
    read_only: bool,
    custody: bool,
) -> list[BindingRow]:
    """The rows of a room: read-only rooms have no batch keys, only custody rooms custody keys."""
    scoped: list[tuple[str, Sequence[BindingType]]] = [
        ("app", app_bindings),
        ("grid", FleetGrid.BINDINGS),
        ("filter", FilterBar.BINDINGS),
        ("command line", CommandLine.BINDINGS),
        ("help", HelpScreen.BINDINGS),
        ("baseline", BaselineScreen.BINDINGS),
    ]
    if not read_only:  # a read-only room has none of these bound
        scoped += [
            ("batch", BatchDesk.BINDINGS),
            ("plan", PlanScreen.BINDINGS),
            ("abort", AbortPrompt.BINDINGS),
        ]
    if custody:
        scoped += [("custody", CUSTODY_BINDINGS), ("custody prompt", CustodyPrompt.BINDINGS)]
    return binding_rows(scoped, keymap)
