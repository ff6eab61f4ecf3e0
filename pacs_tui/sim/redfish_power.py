"""Power and thermal resources of a simulated server's chassis, in both Redfish schemas.

Every simulated chassis has two 800 W supplies (``PSU 1`` / ``PSU 2`` in
bays ``Bay1`` / ``Bay2``, 1+1 redundant) and an inlet temperature sensor.
Its draw is a pure function of the host now (``draw_watts``): 0 W while
off, an idle figure of 150–299 W fixed per serial number, and a boot peak of
``BOOT_PEAK_FACTOR`` × idle from power-on until the services are up
(``HostTimings.boot_s + service_start_s``). A live supply carries an equal
share; one without input carries none.

Which schemas a chassis serves depends on its flavour (``power_schemas``):
``subsystem`` (default: ``PowerSubsystem``, ``ThermalSubsystem``,
``EnvironmentMetrics``), ``legacy`` (flavour ``legacy-power``: ``Power`` and
``Thermal`` only, as most fielded BMCs) or ``both`` (flavour ``dual-power``,
as the DMTF's rack-server mockup does) or ``none`` (flavour
``no-power-telemetry``: the chassis links none of them). The legacy two are deprecated
(DSP0268 since 2020.4), so only those flavours draw the Service Validator's
deprecation warnings. Schema versions follow the DMTF's 2025.4
``public-rackmount1`` mockup.

Faults (``HostFaults``): ``psu_unplugged: N`` (bay N has no input:
``LineInputStatus: LossOfInput``, ``LineInputVoltage: 0``, Health Critical,
redundancy Critical), ``inlet_celsius: T`` (the inlet reads T °C).
"""

from __future__ import annotations

import zlib
from typing import Any

from pacs_tui.power import PowerState
from pacs_tui.sim.faults import PSU_BAYS
from pacs_tui.sim.host import SimulatedHost
from pacs_tui.sim.redfish_flavour import FlavourProfile

V1 = "/redfish/v1"
PSU_COUNT = PSU_BAYS
PSU_CAPACITY_W = 800
LINE_VOLTS = 230.0
BOOT_PEAK_FACTOR = 1.6
INLET_NORMAL_C = 22.0  # plus up to 2.9 °C per server, fixed by its serial number

Body = dict[str, Any]


def _ref(uri: str) -> dict[str, str]:
    return {"@odata.id": uri}


def _seed(host: SimulatedHost) -> int:
    return zlib.crc32(host.hardware.serial_number.encode())


def chassis_uri(p: FlavourProfile) -> str:
    """The chassis these resources hang below."""
    return f"{V1}/Chassis/{p.chassis_id}"


# -- the model ----------------------------------------------------------------------


def idle_watts(host: SimulatedHost) -> float:
    """The server's draw once booted, in W (150–299, fixed per serial number)."""
    return float(150 + _seed(host) % 150)


def draw_watts(host: SimulatedHost) -> float:
    """The server's input power now, in W: 0 off, the boot peak, then idle."""
    if host.power_state is PowerState.POWERING_ON:
        return round(idle_watts(host) * BOOT_PEAK_FACTOR)
    if host.power_state is not PowerState.ON:
        return 0.0
    peak_s = host.timings.boot_s + host.timings.service_start_s
    if host.seconds_since_power_on() < peak_s:
        return round(idle_watts(host) * BOOT_PEAK_FACTOR)
    return idle_watts(host)


def inlet_celsius(host: SimulatedHost) -> float:
    """The inlet air temperature now, in °C (the ``inlet_celsius`` fault, else normal)."""
    planted = host.faults.inlet_celsius
    if planted > 0:
        return planted
    return INLET_NORMAL_C + (_seed(host) % 30) / 10


def has_input(host: SimulatedHost, bay: int) -> bool:
    """Whether supply ``bay`` (1-based) has input power."""
    return host.faults.psu_unplugged != bay


def supply_watts(host: SimulatedHost, bay: int) -> float:
    """Supply ``bay``'s input power in W: an equal share of the draw among live supplies."""
    live = [b for b in range(1, PSU_COUNT + 1) if has_input(host, b)]
    if bay not in live or not live:
        return 0.0
    return round(draw_watts(host) / len(live), 1)


def _supply_status(host: SimulatedHost, bay: int) -> Body:
    return {"State": "Enabled", "Health": "OK" if has_input(host, bay) else "Critical"}


def _redundancy_status(host: SimulatedHost) -> Body:
    lost = any(not has_input(host, b) for b in range(1, PSU_COUNT + 1))
    return {"State": "Enabled", "Health": "Critical" if lost else "OK"}


# -- what the chassis links ------------------------------------------------------------


def chassis_links(p: FlavourProfile) -> Body:
    """The chassis properties that link this module's resources, per the flavour."""
    base = chassis_uri(p)
    links: Body = {}
    if p.power_schemas in ("both", "subsystem"):
        links["PowerSubsystem"] = _ref(f"{base}/PowerSubsystem")
        links["ThermalSubsystem"] = _ref(f"{base}/ThermalSubsystem")
        links["EnvironmentMetrics"] = _ref(f"{base}/EnvironmentMetrics")
    if p.power_schemas in ("both", "legacy"):
        links["Power"] = _ref(f"{base}/Power")
        links["Thermal"] = _ref(f"{base}/Thermal")
    return links


def serves(p: FlavourProfile, resource: str) -> bool:
    """Whether the flavour serves ``resource`` (the first path segment below the chassis)."""
    legacy = resource in ("Power", "Thermal")
    if p.power_schemas == "none":
        return False
    return p.power_schemas == "both" or (p.power_schemas == "legacy") == legacy


# -- legacy: Power.v1, Thermal.v1 -----------------------------------------------------


def power(host: SimulatedHost, p: FlavourProfile) -> Body:
    """``Chassis/<id>/Power``: PowerControl, PowerSupplies and their Redundancy."""
    uri = f"{chassis_uri(p)}/Power"
    supplies = []
    for bay in range(1, PSU_COUNT + 1):
        supplies.append(
            {
                "@odata.id": f"{uri}#/PowerSupplies/{bay - 1}",
                "MemberId": str(bay - 1),
                "Name": f"PSU {bay}",
                "Status": _supply_status(host, bay),
                "PowerSupplyType": "AC",
                "LineInputVoltageType": "ACWideRange",
                "LineInputVoltage": LINE_VOLTS if has_input(host, bay) else 0,
                "PowerInputWatts": supply_watts(host, bay),
                "PowerCapacityWatts": PSU_CAPACITY_W,
                "Redundancy": [_ref(f"{uri}#/Redundancy/0")],
            }
        )
    return {
        "@odata.id": uri,
        "@odata.type": "#Power.v1_7_3.Power",
        "Id": "Power",
        "Name": "Power",
        "PowerControl": [
            {
                "@odata.id": f"{uri}#/PowerControl/0",
                "MemberId": "0",
                "Name": "System Input Power",
                "PowerConsumedWatts": draw_watts(host),
                "PowerCapacityWatts": PSU_CAPACITY_W,
                "Status": {"State": "Enabled", "Health": "OK"},
            }
        ],
        "PowerSupplies": supplies,
        "Redundancy": [
            {
                "@odata.id": f"{uri}#/Redundancy/0",
                "MemberId": "0",
                "Name": "PSU Redundancy",
                "Mode": "N+m",
                "MinNumNeeded": 1,
                "MaxNumSupported": PSU_COUNT,
                "RedundancySet": [_ref(f"{uri}#/PowerSupplies/{b}") for b in range(PSU_COUNT)],
                "Status": _redundancy_status(host),
            }
        ],
    }


def thermal(host: SimulatedHost, p: FlavourProfile) -> Body:
    """``Chassis/<id>/Thermal``: the inlet sensor (``PhysicalContext: Intake``)."""
    uri = f"{chassis_uri(p)}/Thermal"
    return {
        "@odata.id": uri,
        "@odata.type": "#Thermal.v1_7_3.Thermal",
        "Id": "Thermal",
        "Name": "Thermal",
        "Temperatures": [
            {
                "@odata.id": f"{uri}#/Temperatures/0",
                "MemberId": "0",
                "Name": "Inlet Temp",
                "PhysicalContext": "Intake",
                "ReadingCelsius": inlet_celsius(host),
                "UpperThresholdNonCritical": 42,
                "UpperThresholdCritical": 47,
                "Status": {"State": "Enabled", "Health": "OK"},
            }
        ],
    }


# -- newer: PowerSubsystem.v1, PowerSupply.v1, PowerSupplyMetrics.v1, EnvironmentMetrics.v1,
#    ThermalSubsystem.v1, ThermalMetrics.v1 -------------------------------------------


def power_subsystem(host: SimulatedHost, p: FlavourProfile) -> Body:
    """``Chassis/<id>/PowerSubsystem``: capacity, the supplies link, their redundancy."""
    uri = f"{chassis_uri(p)}/PowerSubsystem"
    return {
        "@odata.id": uri,
        "@odata.type": "#PowerSubsystem.v1_1_3.PowerSubsystem",
        "Id": "PowerSubsystem",
        "Name": "Power Subsystem for Chassis",
        "CapacityWatts": PSU_CAPACITY_W,  # what one supply carries: the redundant capacity
        "PowerSupplies": _ref(f"{uri}/PowerSupplies"),
        "PowerSupplyRedundancy": [
            {
                "RedundancyType": "Failover",
                "MaxSupportedInGroup": PSU_COUNT,
                "MinNeededInGroup": 1,
                "RedundancyGroup": [
                    _ref(f"{uri}/PowerSupplies/Bay{b}") for b in range(1, PSU_COUNT + 1)
                ],
                "Status": _redundancy_status(host),
            }
        ],
        "Status": {"State": "Enabled", "Health": "OK"},
    }


def supply_ids() -> list[str]:
    """The PowerSupply ids, in bay order."""
    return [f"Bay{b}" for b in range(1, PSU_COUNT + 1)]


def power_supply(host: SimulatedHost, p: FlavourProfile, supply: str) -> Body | None:
    """``PowerSubsystem/PowerSupplies/BayN``; None for an unknown bay."""
    if supply not in supply_ids():
        return None
    bay = supply_ids().index(supply) + 1
    uri = f"{chassis_uri(p)}/PowerSubsystem/PowerSupplies/{supply}"
    return {
        "@odata.id": uri,
        "@odata.type": "#PowerSupply.v1_6_0.PowerSupply",
        "Id": supply,
        "Name": f"Power Supply Bay {bay}",
        "Status": _supply_status(host, bay),
        "LineInputStatus": "Normal" if has_input(host, bay) else "LossOfInput",
        "PowerSupplyType": "AC",
        "PowerCapacityWatts": PSU_CAPACITY_W,
        "HotPluggable": True,
        "Manufacturer": host.hardware.manufacturer,
        "Location": {
            "PartLocation": {
                "ServiceLabel": f"PSU {bay}",
                "LocationType": "Bay",
                "LocationOrdinalValue": bay - 1,
            }
        },
        "Metrics": _ref(f"{uri}/Metrics"),
    }


def power_supply_metrics(host: SimulatedHost, p: FlavourProfile, supply: str) -> Body | None:
    """``PowerSupplies/BayN/Metrics``: input power and voltage; None for an unknown bay."""
    if supply not in supply_ids():
        return None
    bay = supply_ids().index(supply) + 1
    uri = f"{chassis_uri(p)}/PowerSubsystem/PowerSupplies/{supply}/Metrics"
    return {
        "@odata.id": uri,
        "@odata.type": "#PowerSupplyMetrics.v1_2_0.PowerSupplyMetrics",
        "Id": "Metrics",
        "Name": f"Metrics for Power Supply {bay}",
        "Status": _supply_status(host, bay),
        "InputVoltage": {"Reading": LINE_VOLTS if has_input(host, bay) else 0},
        "InputPowerWatts": {"Reading": supply_watts(host, bay)},
    }


def environment_metrics(host: SimulatedHost, p: FlavourProfile) -> Body:
    """``Chassis/<id>/EnvironmentMetrics``: the chassis's input power."""
    return {
        "@odata.id": f"{chassis_uri(p)}/EnvironmentMetrics",
        "@odata.type": "#EnvironmentMetrics.v1_5_0.EnvironmentMetrics",
        "Id": "EnvironmentMetrics",
        "Name": "Chassis Environment Metrics",
        "PowerWatts": {"Reading": draw_watts(host)},
    }


def thermal_subsystem(host: SimulatedHost, p: FlavourProfile) -> Body:
    """``Chassis/<id>/ThermalSubsystem``: links ThermalMetrics."""
    uri = f"{chassis_uri(p)}/ThermalSubsystem"
    return {
        "@odata.id": uri,
        "@odata.type": "#ThermalSubsystem.v1_5_0.ThermalSubsystem",
        "Id": "ThermalSubsystem",
        "Name": "Thermal Subsystem for Chassis",
        "ThermalMetrics": _ref(f"{uri}/ThermalMetrics"),
        "Status": {"State": "Enabled", "Health": "OK"},
    }


def thermal_metrics(host: SimulatedHost, p: FlavourProfile) -> Body:
    """``ThermalSubsystem/ThermalMetrics``: the intake summary and reading."""
    celsius = inlet_celsius(host)
    return {
        "@odata.id": f"{chassis_uri(p)}/ThermalSubsystem/ThermalMetrics",
        "@odata.type": "#ThermalMetrics.v1_3_2.ThermalMetrics",
        "Id": "ThermalMetrics",
        "Name": "Chassis Thermal Metrics",
        "TemperatureSummaryCelsius": {"Intake": {"Reading": celsius}},
        "TemperatureReadingsCelsius": [{"DeviceName": "Inlet", "Reading": celsius}],
    }
