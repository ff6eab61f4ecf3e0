"""FleetMonitor: the one poller of a fleet, wiring inventory → probes → scheduler → state.

The control room, the wall display, ``pacs-tui status`` and batch gates all
read the monitor's ``FleetState``; none of them polls on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from pacs_tui import gc_tuning
from pacs_tui.inventory import Inventory, Server
from pacs_tui.plugin_api import Probe, ProbeContext
from pacs_tui.plugin_catalog import load_probes
from pacs_tui.scheduler import ConcurrencyCaps, Scheduler
from pacs_tui.state import FleetState

log = logging.getLogger(__name__)

PROBE_ORDER = ("power", "network", "dicom", "ssh")


class FleetMonitor:
    """Owns the probes, the scheduler and the state of one inventory."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        probes: Sequence[Probe] | None = None,
        servers: Sequence[Server] | None = None,
        settings: Mapping[str, Any] | None = None,
        caps: ConcurrencyCaps | None = None,
    ) -> None:
        self.inventory = inventory
        self.settings = dict(settings or {})
        self.failed_plugins: dict[str, str] = {}
        if probes is None:
            loaded = load_probes()
            self.failed_plugins.update(loaded.failed)
            probes = list(loaded.plugins.values())
        self.probes = sorted(
            probes,
            key=lambda p: (PROBE_ORDER.index(p.name) if p.name in PROBE_ORDER else 99, p.name),
        )
        self.servers = list(servers if servers is not None else inventory.servers)
        self.caps = caps
        self.state = FleetState(
            [s.name for s in self.servers], {p.name: p.interval_s for p in self.probes}
        )
        self.scheduler: Scheduler | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._gc_task: asyncio.Task[None] | None = None
        self._applicable: dict[str, tuple[str, ...]] = {}

    # -- FleetSource (pacs_tui.fleet_source): what screens read -----------------------

    @property
    def probe_names(self) -> list[str]:
        """The names of the probes (after ``open``: those that opened)."""
        return [p.name for p in self.probes]

    @property
    def label(self) -> str:
        """``this process`` : the screen polls the fleet itself."""
        return "this process"

    def applicable(self, server: Server) -> tuple[str, ...]:
        """The probes that apply to ``server`` (cached: applicability is per inventory)."""
        names = self._applicable.get(server.name)
        if names is None:
            names = self._applicable[server.name] = tuple(
                p.name for p in self.probes if p.applies_to(server)
            )
        return names

    def data_age_s(self, now: float | None = None) -> float | None:
        """Always None: the poller is in this process, its readings say their own age."""
        return None

    async def open(self) -> None:
        """Open every probe; a probe whose ``open`` fails is reported and left out."""
        context = ProbeContext(self.inventory, self.settings)
        opened: list[Probe] = []
        for probe in self.probes:
            try:
                await probe.open(context)
            except Exception as exc:  # a broken plugin must not stop the others
                log.warning("probe %s failed to open: %s", probe.name, exc)
                self.failed_plugins[probe.name] = f"open failed: {type(exc).__name__}: {exc}"
                continue
            opened.append(probe)
        self.probes = opened
        self._applicable.clear()  # a probe that failed to open applies to nobody
        # Intervals may have been set from settings in open().
        self.state.intervals = {p.name: p.interval_s for p in self.probes}
        self.scheduler = Scheduler(self.servers, self.probes, self.state, self.caps)

    async def close(self) -> None:
        """Stop polling and close every probe (logs out of BMCs, closes SSH)."""
        await self.stop()
        for probe in self.probes:
            try:
                await probe.close()
            except Exception as exc:
                log.warning("probe %s failed to close: %s", probe.name, exc)

    async def sweep(self, names: Sequence[str] | None = None) -> None:
        """Poll every selected server once with every probe."""
        assert self.scheduler is not None, "open() the monitor first"
        await self.scheduler.sweep(names)

    def start(self) -> asyncio.Task[None]:
        """Start continuous polling in the background."""
        assert self.scheduler is not None, "open() the monitor first"
        if self._run_task is None or self._run_task.done():
            self._run_task = asyncio.create_task(self.scheduler.run(), name="fleet-monitor")
        if self._gc_task is None:
            # A continuous poller lives for hours: once every pair has a reading (sessions
            # and connections open), its state is frozen out of the cyclic collector's
            # walks, which were half the poll CPU at 3 000 servers (pacs_tui.gc_tuning).
            pairs = len(self.scheduler.pairs())
            self._gc_task = asyncio.create_task(
                gc_tuning.tune_when_warm(lambda: len(self.state.keys()) >= pairs),
                name="fleet-monitor-gc",
            )
        return self._run_task

    async def stop(self) -> None:
        """Stop continuous polling."""
        if self._gc_task is not None:
            self._gc_task.cancel()  # what it froze stays frozen (harmless, see gc_tuning)
            with contextlib.suppress(asyncio.CancelledError):
                await self._gc_task
            self._gc_task = None
        if self._run_task is not None:
            self._run_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._run_task
            self._run_task = None

    async def __aenter__(self) -> FleetMonitor:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
