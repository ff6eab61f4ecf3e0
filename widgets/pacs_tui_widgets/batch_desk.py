"""The batch power keys, carried by the container around the grid.

They live on a widget that a read-only control room never mounts, so in a
read-only session the keys are not bound at all (not merely disabled); the
engine's ``Session`` refuses runners anyway. Every binding has an id for
the keymap and the help screen, and calls the app's batch actions.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Horizontal

BATCH_BINDINGS: list[BindingType] = [
    Binding("O", "app.batch_power('off')", "Power off (graceful)", show=False, id="batch.off"),
    Binding("N", "app.batch_power('on')", "Power on", show=False, id="batch.on"),
    Binding("R", "app.batch_power('restart')", "Restart", show=False, id="batch.restart"),
    Binding(
        "F",
        "app.batch_power('force-off')",
        "FORCE off (typed count)",
        show=False,
        id="batch.force_off",
    ),
    Binding("b", "app.batch_view", "Show/hide the batch pane", show=False, id="batch.view"),
    Binding("A", "app.batch_abort", "Abort the running batch", show=False, id="batch.abort"),
    Binding("p", "app.batch_pause", "Pause/resume the batch", show=False, id="batch.pause"),
]
BATCH_BINDING_IDS = tuple(b.id for b in BATCH_BINDINGS if isinstance(b, Binding) and b.id)


class BatchDesk(Horizontal):
    """Holds the grid and the detail pane, and the batch keys (writable sessions only)."""

    BINDINGS: ClassVar[list[BindingType]] = BATCH_BINDINGS
