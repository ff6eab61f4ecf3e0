"""Bodies of the Redfish resources a simulated BMC serves (DSP0266 shapes).

Pure functions of a host and its flavour profile: the service reads the
host's state on every request, so a body is always the current truth.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from pacs_tui.power import PowerState
from pacs_tui.sim.host import SimulatedHost
from pacs_tui.sim.redfish_flavour import FlavourProfile, nic_id
from pacs_tui.sim.redfish_power import chassis_links
from pacs_tui.sim.redfish_sessions import RedfishSession
from pacs_tui.sim.redfish_tasks import TASKS

V1 = "/redfish/v1"
SYSTEMS = f"{V1}/Systems"
MANAGERS = f"{V1}/Managers"
CHASSIS = f"{V1}/Chassis"
SESSION_SERVICE = f"{V1}/SessionService"
SESSIONS = f"{SESSION_SERVICE}/Sessions"
TASK_SERVICE = f"{V1}/TaskService"

_NAMESPACE = uuid.UUID("5f0c7a52-3c1e-4b8e-9a55-5c1d0e6b7a10")

Body = dict[str, Any]


def _ref(uri: str) -> dict[str, str]:
    return {"@odata.id": uri}


def collection(uri: str, odata_type: str, name: str, members: Iterable[str]) -> Body:
    """A resource collection listing ``members`` (URIs)."""
    refs = [_ref(m) for m in members]
    return {
        "@odata.id": uri,
        "@odata.type": f"#{odata_type}.{odata_type}",
        "Name": name,
        "Members": refs,
        "Members@odata.count": len(refs),
    }


def versions() -> Body:
    """``GET /redfish``: the protocol versions offered."""
    return {"v1": f"{V1}/"}


def service_root(host: SimulatedHost, p: FlavourProfile) -> Body:
    """``GET /redfish/v1/``: readable without authentication."""
    return {
        "@odata.id": f"{V1}/",
        "@odata.type": "#ServiceRoot.v1_15_0.ServiceRoot",
        "Id": "RootService",
        "Name": "Root Service",
        "RedfishVersion": p.redfish_version,
        "UUID": str(uuid.uuid5(_NAMESPACE, host.hardware.serial_number)),
        "Vendor": p.vendor,
        "Product": p.product,
        "Systems": _ref(SYSTEMS),
        "Managers": _ref(MANAGERS),
        "Chassis": _ref(CHASSIS),
        "SessionService": _ref(SESSION_SERVICE),
        # ServiceRoot names the TaskService link "Tasks" (DSP8010); "TaskService" is not a property.
        "Tasks": _ref(TASK_SERVICE),
        "Links": {"Sessions": _ref(SESSIONS)},
    }


def odata_document() -> Body:
    """``GET /redfish/v1/odata``: the OData service document."""
    # Each entry is named after its ServiceRoot property, so the TaskService is "Tasks".
    entries = {
        "Service": f"{V1}/",
        "Systems": SYSTEMS,
        "Managers": MANAGERS,
        "Chassis": CHASSIS,
        "SessionService": SESSION_SERVICE,
        "Tasks": TASK_SERVICE,
    }
    return {
        "@odata.context": f"{V1}/$metadata",
        "value": [{"name": n, "kind": "Singleton", "url": u} for n, u in entries.items()],
    }


METADATA_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">\n'
    '  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/ServiceRoot_v1.xml">\n'
    '    <edmx:Include Namespace="ServiceRoot.v1_15_0"/>\n'
    "  </edmx:Reference>\n"
    "  <edmx:DataServices>\n"
    '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">\n'
    '      <EntityContainer Name="Service" Extends="ServiceRoot.v1_15_0.ServiceContainer"/>\n'
    "    </Schema>\n"
    "  </edmx:DataServices>\n"
    "</edmx:Edmx>\n"
)


def _status(power: PowerState) -> dict[str, str]:
    state = {
        PowerState.ON: "Enabled",
        PowerState.POWERING_ON: "Starting",
        PowerState.POWERING_OFF: "Enabled",
    }.get(power, "StandbyOffline")
    return {"State": state, "Health": "OK"}


def system_uri(p: FlavourProfile) -> str:
    """The ComputerSystem's URI."""
    return f"{SYSTEMS}/{p.system_id}"


def reset_target(p: FlavourProfile) -> str:
    """Where ``ComputerSystem.Reset`` is POSTed."""
    return f"{system_uri(p)}/Actions/ComputerSystem.Reset"


def action_info_uri(p: FlavourProfile) -> str:
    """The ActionInfo resource describing the Reset parameters."""
    return f"{system_uri(p)}/ResetActionInfo"


def system(host: SimulatedHost, p: FlavourProfile) -> Body:
    """The ComputerSystem: power state and hardware facts."""
    hw = host.hardware
    reset: Body = {"target": reset_target(p), "@Redfish.ActionInfo": action_info_uri(p)}
    if p.allowable_values_inline:
        reset["ResetType@Redfish.AllowableValues"] = [str(t) for t in p.reset_types]
    return {
        "@odata.id": system_uri(p),
        "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
        "Id": p.system_id,
        "Name": "System",
        "SystemType": "Physical",
        "HostName": host.name,
        "PowerState": str(host.power_state),
        "Status": _status(host.power_state),
        "Manufacturer": hw.manufacturer,
        "Model": hw.model,
        "SerialNumber": hw.serial_number,
        "BiosVersion": hw.bios_version,
        "UUID": str(uuid.uuid5(_NAMESPACE, f"system:{hw.serial_number}")),
        "EthernetInterfaces": _ref(f"{system_uri(p)}/EthernetInterfaces"),
        "Links": {
            "Chassis": [_ref(f"{CHASSIS}/{p.chassis_id}")],
            "ManagedBy": [_ref(f"{MANAGERS}/{p.manager_id}")],
        },
        "Actions": {"#ComputerSystem.Reset": reset},
    }


def nic_uris(host: SimulatedHost, p: FlavourProfile) -> list[str]:
    """URIs of the system's EthernetInterfaces, one per MAC address."""
    base = f"{system_uri(p)}/EthernetInterfaces"
    return [f"{base}/{nic_id(p, i)}" for i in range(len(host.hardware.mac_addresses))]


def ethernet_interface(host: SimulatedHost, p: FlavourProfile, nic: str) -> Body | None:
    """One EthernetInterface, or None when ``nic`` is not one of the host's."""
    for index, mac in enumerate(host.hardware.mac_addresses):
        if nic_id(p, index) == nic:
            return {
                "@odata.id": f"{system_uri(p)}/EthernetInterfaces/{nic}",
                "@odata.type": "#EthernetInterface.v1_9_0.EthernetInterface",
                "Id": nic,
                "Name": f"Ethernet Interface {nic}",
                "MACAddress": mac,
                "PermanentMACAddress": mac,
                "Status": {"State": "Enabled", "Health": "OK"},
            }
    return None


def action_info(p: FlavourProfile) -> Body:
    """The ActionInfo listing the ResetType values this BMC allows."""
    return {
        "@odata.id": action_info_uri(p),
        "@odata.type": "#ActionInfo.v1_3_0.ActionInfo",
        "Id": "ResetActionInfo",
        "Name": "Reset Action Info",
        "Parameters": [
            {
                "Name": "ResetType",
                "Required": True,
                "DataType": "String",
                "AllowableValues": [str(t) for t in p.reset_types],
            }
        ],
    }


def manager(host: SimulatedHost, p: FlavourProfile) -> Body:
    """The BMC itself."""
    return {
        "@odata.id": f"{MANAGERS}/{p.manager_id}",
        "@odata.type": "#Manager.v1_17_0.Manager",
        "Id": p.manager_id,
        "Name": "Manager",
        "ManagerType": "BMC",
        "Manufacturer": p.vendor,
        "Model": p.manager_model,
        "FirmwareVersion": host.hardware.bmc_firmware,
        "PowerState": "On",  # the BMC runs on standby power
        "Status": {"State": "Enabled", "Health": "OK"},
        "Links": {"ManagerForServers": [_ref(system_uri(p))]},
    }


def chassis(host: SimulatedHost, p: FlavourProfile) -> Body:
    """The enclosure."""
    hw = host.hardware
    return {
        "@odata.id": f"{CHASSIS}/{p.chassis_id}",
        "@odata.type": "#Chassis.v1_22_0.Chassis",
        "Id": p.chassis_id,
        "Name": "Computer System Chassis",
        "ChassisType": "RackMount",
        "Manufacturer": hw.manufacturer,
        "Model": hw.model,
        "SerialNumber": hw.serial_number,
        "PowerState": str(host.power_state),
        "Status": _status(host.power_state),
        **chassis_links(p),
        "Links": {
            "ComputerSystems": [_ref(system_uri(p))],
            "ManagedBy": [_ref(f"{MANAGERS}/{p.manager_id}")],
        },
    }


def session_service(limit: int, timeout_s: float) -> Body:
    """The SessionService."""
    return {
        "@odata.id": SESSION_SERVICE,
        "@odata.type": "#SessionService.v1_1_8.SessionService",
        "Id": "SessionService",
        "Name": "Session Service",
        "ServiceEnabled": True,
        "SessionTimeout": round(timeout_s),
        # The limit goes in Description: no standard property holds it, and an Oem
        # object would need its own @odata.type and CSDL schema to validate.
        "Description": f"Session service (at most {limit} simultaneous sessions)",
        "Sessions": _ref(SESSIONS),
        "Status": {"State": "Enabled", "Health": "OK"},
    }


def session(s: RedfishSession) -> Body:
    """One Session (never with its token)."""
    return {
        "@odata.id": f"{SESSIONS}/{s.session_id}",
        "@odata.type": "#Session.v1_6_0.Session",
        "Id": s.session_id,
        "Name": "User Session",
        "UserName": s.username,
    }


def task_service() -> Body:
    """The TaskService."""
    return {
        "@odata.id": TASK_SERVICE,
        "@odata.type": "#TaskService.v1_2_0.TaskService",
        "Id": "TaskService",
        "Name": "Task Service",
        "ServiceEnabled": True,
        "CompletedTaskOverWritePolicy": "Oldest",
        "Tasks": _ref(TASKS),
        "Status": {"State": "Enabled", "Health": "OK"},
    }
