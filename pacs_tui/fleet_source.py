"""FleetSource: what a screen reads its fleet from, its own poller or a service.

The control room and the wall draw from a ``FleetSource``: a ``FleetMonitor``
(the screen polls the fleet itself, as before) or a ``ServiceMirror``
(``--connect URL``: a copy of a ``pacs-tui serve``'s state). One UI code
path for both; only ``data_age_s`` differs: None while the data is live,
else the seconds since the source last heard from the fleet's poller.
"""

from __future__ import annotations

from typing import Any, Protocol

from pacs_tui.inventory import Inventory, Server
from pacs_tui.state import FleetState


class FleetSource(Protocol):
    """The read side of a fleet poller, wherever it runs."""

    inventory: Inventory
    state: FleetState
    failed_plugins: dict[str, str]

    @property
    def servers(self) -> list[Server]:
        """The servers polled, in inventory order."""
        ...

    @property
    def probe_names(self) -> list[str]:
        """The probes that read the fleet (after ``open``)."""
        ...

    @property
    def label(self) -> str:
        """Where the data comes from, for titles and the event log."""
        ...

    def applicable(self, server: Server) -> tuple[str, ...]:
        """The probes that apply to ``server``."""
        ...

    def data_age_s(self, now: float | None = None) -> float | None:
        """None while live; else seconds since the poller was last heard."""
        ...

    async def open(self) -> None:
        """Connect (probes, or the service's first snapshot)."""
        ...

    def start(self) -> Any:
        """Keep the state current in the background."""
        ...

    async def close(self) -> None:
        """Stop and let go of every connection."""
        ...
