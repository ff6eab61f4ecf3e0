"""Route handlers for a simulated chassis's power and thermal resources (``redfish_power``).

Each resource hangs below ``Chassis/<cid>``: a plain BMC's one chassis, or a
blade's own chassis in an enclosure (never the enclosure chassis, which has
no supplies of its own here). A resource the flavour does not serve is 404,
as on a BMC that never implemented it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from pacs_tui.sim import redfish_power as power
from pacs_tui.sim.bmc_state import SimulatedBmc
from pacs_tui.sim.host import SimulatedHost
from pacs_tui.sim.redfish_flavour import FlavourProfile
from pacs_tui.sim.redfish_messages import json_response, not_found
from pacs_tui.sim.redfish_resources import collection

Match = re.Match[str]
Handler = Callable[[SimulatedBmc, web.Request, Match], Awaitable[web.StreamResponse]]

_CHASSIS = r"/redfish/v1/Chassis/(?P<cid>[^/]+)"
_BAY = r"(?P<bay>[^/]+)"


def _chassis_host(bmc: SimulatedBmc, cid: str) -> tuple[SimulatedHost, FlavourProfile] | None:
    p = bmc.profile
    if not p.enclosure:
        return (bmc.host, p) if cid == p.chassis_id else None
    return bmc.system(cid)  # a blade's chassis has its system's id


def _serving(
    bmc: SimulatedBmc, m: Match, resource: str
) -> tuple[SimulatedHost, FlavourProfile] | None:
    found = _chassis_host(bmc, m["cid"])
    if found is None or not power.serves(found[1], resource):
        return None
    return found


async def _get_power(bmc: SimulatedBmc, request: web.Request, m: Match) -> web.StreamResponse:
    found = _serving(bmc, m, "Power")
    return json_response(power.power(*found)) if found else not_found(request.path)


async def _get_thermal(bmc: SimulatedBmc, request: web.Request, m: Match) -> web.StreamResponse:
    found = _serving(bmc, m, "Thermal")
    return json_response(power.thermal(*found)) if found else not_found(request.path)


async def _get_subsystem(bmc: SimulatedBmc, request: web.Request, m: Match) -> web.StreamResponse:
    found = _serving(bmc, m, "PowerSubsystem")
    return json_response(power.power_subsystem(*found)) if found else not_found(request.path)


async def _get_supplies(bmc: SimulatedBmc, request: web.Request, m: Match) -> web.StreamResponse:
    found = _serving(bmc, m, "PowerSubsystem")
    if found is None:
        return not_found(request.path)
    uri = f"{power.chassis_uri(found[1])}/PowerSubsystem/PowerSupplies"
    members = [f"{uri}/{bay}" for bay in power.supply_ids()]
    return json_response(
        collection(uri, "PowerSupplyCollection", "Power Supply Collection", members)
    )


async def _get_supply(bmc: SimulatedBmc, request: web.Request, m: Match) -> web.StreamResponse:
    found = _serving(bmc, m, "PowerSubsystem")
    body = power.power_supply(*found, m["bay"]) if found else None
    return json_response(body) if body else not_found(request.path)


async def _get_supply_metrics(
    bmc: SimulatedBmc, request: web.Request, m: Match
) -> web.StreamResponse:
    found = _serving(bmc, m, "PowerSubsystem")
    body = power.power_supply_metrics(*found, m["bay"]) if found else None
    return json_response(body) if body else not_found(request.path)


async def _get_environment(bmc: SimulatedBmc, request: web.Request, m: Match) -> web.StreamResponse:
    found = _serving(bmc, m, "EnvironmentMetrics")
    return json_response(power.environment_metrics(*found)) if found else not_found(request.path)


async def _get_thermal_subsystem(
    bmc: SimulatedBmc, request: web.Request, m: Match
) -> web.StreamResponse:
    found = _serving(bmc, m, "ThermalSubsystem")
    return json_response(power.thermal_subsystem(*found)) if found else not_found(request.path)


async def _get_thermal_metrics(
    bmc: SimulatedBmc, request: web.Request, m: Match
) -> web.StreamResponse:
    found = _serving(bmc, m, "ThermalSubsystem")
    return json_response(power.thermal_metrics(*found)) if found else not_found(request.path)


# (URI pattern, GET handler), for ``redfish_routes``' table.
POWER_ROUTES: list[tuple[str, Handler]] = [
    (f"{_CHASSIS}/Power", _get_power),
    (f"{_CHASSIS}/Thermal", _get_thermal),
    (f"{_CHASSIS}/PowerSubsystem", _get_subsystem),
    (f"{_CHASSIS}/PowerSubsystem/PowerSupplies", _get_supplies),
    (f"{_CHASSIS}/PowerSubsystem/PowerSupplies/{_BAY}", _get_supply),
    (f"{_CHASSIS}/PowerSubsystem/PowerSupplies/{_BAY}/Metrics", _get_supply_metrics),
    (f"{_CHASSIS}/EnvironmentMetrics", _get_environment),
    (f"{_CHASSIS}/ThermalSubsystem", _get_thermal_subsystem),
    (f"{_CHASSIS}/ThermalSubsystem/ThermalMetrics", _get_thermal_metrics),
]
