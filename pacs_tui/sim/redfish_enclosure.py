"""Manager and Chassis bodies of a BMC, enclosure-aware.

A plain BMC has one chassis and manages one system. A blade enclosure's BMC
lists an ``Enclosure`` chassis that contains one ``BladeN`` chassis per
ComputerSystem, and its manager manages every blade: a client must pick its
server's system by Id rather than take the first member.
"""

from __future__ import annotations

from pacs_tui.sim import redfish_resources as res
from pacs_tui.sim.bmc_state import SimulatedBmc
from pacs_tui.sim.redfish_flavour import system_view

Body = res.Body


def _ref(uri: str) -> dict[str, str]:
    return {"@odata.id": uri}


def system_uris(bmc: SimulatedBmc) -> list[str]:
    """URIs of every ComputerSystem behind the BMC."""
    return [f"{res.SYSTEMS}/{sid}" for sid in bmc.system_ids()]


def chassis_ids(bmc: SimulatedBmc) -> list[str]:
    """Ids of the Chassis collection's members: the enclosure first, then its blades."""
    p = bmc.profile
    return [p.chassis_id, *bmc.system_ids()] if p.enclosure else [p.chassis_id]


def manager(bmc: SimulatedBmc) -> Body:
    """The Manager, managing every system behind the BMC."""
    p = bmc.profile
    body = res.manager(bmc.host, system_view(p, 0))
    if p.enclosure:
        body["Links"] = {
            "ManagerForServers": [_ref(u) for u in system_uris(bmc)],
            "ManagerForChassis": [_ref(f"{res.CHASSIS}/{c}") for c in chassis_ids(bmc)],
        }
    return body


def chassis(bmc: SimulatedBmc, chassis_id: str) -> Body | None:
    """One Chassis: the host's, the enclosure, or a blade's; None when unknown."""
    p = bmc.profile
    if not p.enclosure:
        return res.chassis(bmc.host, p) if chassis_id == p.chassis_id else None
    manager_ref = _ref(f"{res.MANAGERS}/{p.manager_id}")
    enclosure_uri = f"{res.CHASSIS}/{p.chassis_id}"
    if chassis_id == p.chassis_id:
        first = bmc.host.hardware
        return {
            "@odata.id": enclosure_uri,
            "@odata.type": "#Chassis.v1_22_0.Chassis",
            "Id": p.chassis_id,
            "Name": "Blade Enclosure",
            "ChassisType": "Enclosure",
            "Manufacturer": p.vendor,
            "Model": f"{p.manager_model} Enclosure",
            "SerialNumber": f"{first.serial_number}-ENC",
            "PowerState": "On",  # the enclosure's fans and BMC run while blades are off
            "Status": {"State": "Enabled", "Health": "OK"},
            "Links": {
                "Contains": [_ref(f"{res.CHASSIS}/{b}") for b in bmc.system_ids()],
                "ComputerSystems": [_ref(u) for u in system_uris(bmc)],
                "ManagedBy": [manager_ref],
            },
        }
    found = bmc.system(chassis_id)
    if found is None:
        return None
    host, view = found
    body = res.chassis(host, view)
    body["Name"] = f"Blade {chassis_id}"
    body["ChassisType"] = "Blade"
    body["Links"]["ContainedBy"] = _ref(enclosure_uri)
    return body
