"""The built-in ``rack-power`` probe: each server's power draw, supplies and inlet temperature.

Read over Redfish from the chassis of the server's ComputerSystem
(``chassis_reading``): watts from ``PowerSubsystem`` or the legacy ``Power``,
each supply's health and input, supply redundancy, and the inlet
temperature from ``ThermalSubsystem`` or ``Thermal``. Verdict rules and
settings: ``rack_power_verdict``. Only GETs.

It speaks through the ``power`` probe's own clients while one is open in the
same event loop on the same inventory (as in a ``FleetMonitor``): no second
Redfish session on BMCs whose session tables are small. Without one, it
opens clients of its own, with the same logic (sessions, Basic fallback, TLS
trust, bounded answers, login guard).
"""

from __future__ import annotations

import asyncio
import time

from pacs_tui.credentials import CredentialError
from pacs_tui.inventory import Server
from pacs_tui.plugin_api import Health, ProbeContext, ProbeResult
from pacs_tui_redfish_power.chassis_reading import chassis_of, read_chassis
from pacs_tui_redfish_power.client import BmcClient
from pacs_tui_redfish_power.errors import BmcError, BmcHttpError
from pacs_tui_redfish_power.probe import (
    RedfishPowerProbe,
    _failure,
    _tls_notes,
    open_power_probe,
)
from pacs_tui_redfish_power.rack_power_verdict import DEFAULT_INTERVAL_S, RackPowerSettings, judge
from pacs_tui_redfish_power.trust import TlsTrust

__all__ = ["RedfishRackPowerProbe"]


class RedfishRackPowerProbe(RedfishPowerProbe):
    """Reads a server's power draw (W), supplies, redundancy and inlet (°C) over Redfish.

    ``state`` is ``ok``, ``psu-fault``, ``inlet-warm``, ``inlet-hot`` or
    ``unknown`` (rules in ``rack_power_verdict``). Structured values for
    later work (rack power budgets) are in ``facts``: ``watts`` (float W or
    None), ``watts_source``, ``power_schema`` (``PowerSubsystem`` or
    ``Power``), ``supplies`` (list of ``{label, member, state, health,
    input_ok, input, input_watts, input_volts}``), ``redundancy``,
    ``inlet_c`` (float °C or None), ``inlet_source``, ``inlet_warn_c``,
    ``inlet_crit_c``, ``rack`` (the inventory's rack), ``chassis_path``,
    ``tls`` and ``auth``.
    """

    name = "rack-power"
    interval_s = DEFAULT_INTERVAL_S
    timeout_s = 45.0  # the whole read: discovery, login, up to ~10 GETs

    def __init__(self) -> None:
        super().__init__()
        self.settings = RackPowerSettings()
        # (client, system path) -> chassis path; learned once, dropped on a 404.
        self._chassis: dict[tuple[BmcClient, str], str] = {}

    async def open(self, context: ProbeContext) -> None:
        """Check the ``rack_power_*`` (and ``redfish_*``) settings; open the HTTP session."""
        self.settings = RackPowerSettings.from_settings(context.settings)
        self.interval_s = self.settings.interval_s
        await super().open(context)

    def client(self, server: Server) -> BmcClient:
        """The open ``power`` probe's client of ``server``'s BMC, else one of our own."""
        donor = self._power_probe()
        return donor.client(server) if donor is not None else super().client(server)

    def _power_probe(self) -> RedfishPowerProbe | None:
        if self._context is None:
            return None
        return open_power_probe(self._context.inventory, self._auth)

    async def close(self) -> None:
        """Forget the chassis paths, then log out of every BMC and close the connections."""
        self._chassis.clear()
        await super().close()

    async def probe(self, server: Server) -> ProbeResult:
        """Read the chassis now; every failure becomes a result, never an exception."""
        bmc = server.bmc
        if bmc is None:
            return ProbeResult.make("unknown", Health.UNKNOWN, detail="server has no BMC")
        tls = TlsTrust.mode(bmc)
        if bmc.credentials is None:
            detail = "no BMC credentials in the inventory"
            return ProbeResult.make("unknown", Health.UNKNOWN, detail=detail, tls=tls)
        if self._http is None:
            return ProbeResult.make(
                "unknown", Health.UNKNOWN, detail="rack-power probe is not open"
            )
        client = self.client(server)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                path = await self._chassis_path(client, bmc.system)
                try:
                    reading = await read_chassis(client.get, path, self.settings.schema)
                except BmcHttpError as exc:
                    if exc.status == 404:  # a replaced BMC: find the chassis again next poll
                        self._chassis = {k: v for k, v in self._chassis.items() if v != path}
                    raise
        except CredentialError as exc:
            return ProbeResult.make("unknown", Health.UNKNOWN, detail=str(exc), tls=tls)
        except BmcError as exc:
            failed = _failure(exc, tls, client.auth)
            return ProbeResult("unknown", failed.health, None, failed.detail, facts=failed.facts)
        except TimeoutError:
            detail = f"no answer from BMC within {self.timeout_s:g} s"
            return ProbeResult.make("unknown", Health.DOWN, detail=detail, tls=tls)
        warn_c, crit_c = self.settings.limits(server)
        verdict = judge(reading, warn_c, crit_c)
        facts = {
            **verdict.facts,
            "rack": server.rack,
            "tls": tls,
            "auth": client.auth_in_use,  # what it spoke, as the power probe says
            "endpoint_answered": True,  # a hot inlet is a reading, not a failing BMC
        }
        return ProbeResult(
            state=verdict.state,
            health=verdict.health,
            latency_ms=(time.perf_counter() - started) * 1000,
            detail="; ".join([*verdict.notes, *_tls_notes(tls)]),
            facts=facts,
        )

    async def _chassis_path(self, client: BmcClient, system: str | None) -> str:
        system_path = await client.system_path(system)
        key = (client, system_path)
        found = self._chassis.get(key)
        if found is None:
            _, body = await client.get(system_path)
            found = self._chassis[key] = chassis_of(body, system_path)
        return found
