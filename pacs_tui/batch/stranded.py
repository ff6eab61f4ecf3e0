"""Servers left running with their PACS units stopped: noted during a batch, read at its end.

Off and restart batches stop a server's PACS units over SSH before the OS
goes down. A server that then missed its target may still be On with its
PACS down, and nobody else will say so: the runner notes every stop call
(``UnitStops.note``) and, once the batch ends, reads those servers'
PowerState once more (``UnitStops.read_back``) into
``BatchResult.units_stopped_on`` / ``units_stopped_unknown``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from pacs_tui.batch.plan import PlannedStep
from pacs_tui.batch.readings import POWER_PROBE, Readings
from pacs_tui.batch.result import FINE, BatchResult
from pacs_tui.batch.units import STOP_UNITS_VERB, stopped_units
from pacs_tui.inventory import Server
from pacs_tui.plugin_api import ActionOutcome
from pacs_tui.power import PowerState

log = logging.getLogger(__name__)

# Called per stranded server: (server name, PowerState read, the units it stopped).
StrandedReport = Callable[[str, str, tuple[str, ...]], None]


class UnitStops:
    """The units each server of one batch may have stopped (server name → unit names)."""

    def __init__(self) -> None:
        self.units: dict[str, tuple[str, ...]] = {}

    def note(self, server: Server, step: PlannedStep, outcome: ActionOutcome) -> None:
        """Remember units a stop call may have stopped (done, or sent with no answer)."""
        if step.action_step is None or step.action_step.verb != STOP_UNITS_VERB:
            return
        if outcome.ok or outcome.unknown:
            units = stopped_units(step.call)
            if units:
                self.units[server.name] = units

    async def read_back(
        self,
        result: BatchResult,
        servers: Mapping[str, Server],
        readings: Readings,
        report: StrandedReport,
    ) -> None:
        """Read PowerState of the servers that missed their target after a unit stop.

        Fills ``result.units_stopped_on`` (read On) and ``units_stopped_unknown``
        (neither On nor Off, or unreadable) and calls ``report`` for each; a
        server read Off is left out (its units come back with the boot).
        ``servers`` maps every planned server's name to it.
        """
        for name, units in self.units.items():
            ended = result.servers.get(name)
            if ended is None or ended.status in FINE:
                continue
            try:
                reading = await readings.read(servers[name], POWER_PROBE)
            except Exception:  # a broken probe must not hide the stop: report unknown
                log.exception("reading PowerState of %s after the batch failed", name)
                reading = None
            state = reading.state if reading is not None else str(PowerState.UNKNOWN)
            if state == PowerState.OFF:
                continue  # down with its server: the units come back with the boot
            if state == PowerState.ON:
                result.units_stopped_on[name] = units
            else:
                result.units_stopped_unknown[name] = units
            report(name, state, units)
