"""How the batch engine reads the fleet: through the one poller's probes.

A batch never opens its own Redfish, SSH or DICOM readers: it asks the
fleet's ``FleetMonitor`` to poll one server now, under the scheduler's caps
(few requests per BMC), and the reading lands in ``FleetState`` where the
control room sees it too. Plans take each server's power facts (PowerState,
allowed ResetTypes, the Reset URL) from the ``power`` probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pacs_tui.inventory import Server
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import ProbeResult
from pacs_tui.power import PowerState

POWER_PROBE = "power"
SSH_PROBE = "ssh"
DICOM_PROBE = "dicom"


class Readings(Protocol):
    """Fresh readings of one probe on one server."""

    def has(self, probe: str) -> bool:
        """Whether the probe is available at all."""
        ...

    async def read(self, server: Server, probe: str) -> ProbeResult | None:
        """Poll ``probe`` on ``server`` now; None when the probe is missing or does not apply."""
        ...


class MonitorReadings:
    """``Readings`` through a ``FleetMonitor``'s scheduler (caps respected, state updated)."""

    def __init__(self, monitor: FleetMonitor) -> None:
        """Read through ``monitor``, which must be open."""
        if monitor.scheduler is None:
            raise RuntimeError("open() the fleet monitor before reading through it")
        self.monitor = monitor
        self._probes = {p.name: p for p in monitor.probes}

    def has(self, probe: str) -> bool:
        """Whether the monitor runs ``probe``."""
        return probe in self._probes

    async def read(self, server: Server, probe: str) -> ProbeResult | None:
        """Poll now through the scheduler."""
        found = self._probes.get(probe)
        scheduler = self.monitor.scheduler
        if found is None or scheduler is None or not found.applies_to(server):
            return None
        return await scheduler.poll(server, found)


@dataclass(frozen=True)
class PowerFacts:
    """What a plan needs to know about one server's power, from the power probe."""

    state: str = str(PowerState.UNKNOWN)
    reset_types: tuple[str, ...] = ()  # empty: the BMC did not say (or was not read)
    facts: Mapping[str, Any] = field(default_factory=dict)
    detail: str = ""

    @classmethod
    def from_result(cls, result: ProbeResult | None) -> PowerFacts:
        """Facts from one power probe reading (Unknown without one)."""
        if result is None:
            return cls(detail="no power reading")
        types = result.facts.get("reset_types") or ()
        return cls(
            state=result.state,
            reset_types=tuple(str(t) for t in types),
            facts=dict(result.facts),
            detail=result.detail,
        )

    def allows(self, reset_type: str) -> bool:
        """Whether the BMC lists ``reset_type`` (True when it did not say)."""
        return not self.reset_types or reset_type in self.reset_types


async def power_facts(
    readings: Readings, servers: Iterable[Server], *, limit: int = 64
) -> dict[str, PowerFacts]:
    """Read every server's power facts now (in parallel, at most ``limit`` at once)."""
    gate = asyncio.Semaphore(limit)

    async def one(server: Server) -> tuple[str, PowerFacts]:
        async with gate:
            return server.name, PowerFacts.from_result(await readings.read(server, POWER_PROBE))

    pairs = await asyncio.gather(*(one(s) for s in servers))
    return dict(pairs)
