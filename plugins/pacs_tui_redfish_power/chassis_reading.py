"""From a server's ComputerSystem to its chassis's power and inlet readings.

The chassis is the first of ``ComputerSystem.Links.Chassis`` (DSP0268,
``ComputerSystem.v1``): a blade's own chassis, never the enclosure. Its
``PowerSubsystem`` / ``Power`` and ``ThermalSubsystem`` / ``Thermal`` links
say which schemas the BMC serves (``chassis_power``, ``chassis_thermal``).
Only GETs: ``6 + 2 × supplies`` of them for the newer schema, 3 for the
legacy one (the chassis included), each bounded by the BMC's ``timeout_s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pacs_tui_redfish_power.bounded_http import link
from pacs_tui_redfish_power.chassis_power import (
    ChassisPower,
    legacy_power,
    read_subsystem_power,
)
from pacs_tui_redfish_power.chassis_thermal import InletReading, legacy_inlet, subsystem_inlet
from pacs_tui_redfish_power.errors import BmcBadAnswer
from pacs_tui_redfish_power.excerpts import Getter, get_optional, text

__all__ = ["ChassisReading", "SchemaChoice", "chassis_of", "read_chassis"]

# ``auto``: the newer schema where the chassis links it; the others force one.
SchemaChoice = Literal["auto", "subsystem", "legacy"]


@dataclass(frozen=True)
class ChassisReading:
    """Power and inlet of one chassis; None for a part that could not be read (``why``)
    or that the chassis does not offer at all (``not_offered``)."""

    chassis_path: str
    power_state: str | None  # Chassis.PowerState (On, Off, ...), when given
    power: ChassisPower | None
    inlet: InletReading | None
    why: list[str] = field(default_factory=list)
    # Parts the chassis links no resource for (a BMC without power or thermal
    # telemetry): a lasting capability, not a failed read. "power" / "inlet" -> why.
    not_offered: dict[str, str] = field(default_factory=dict)


def chassis_of(system: dict[str, Any], system_path: str) -> str:
    """The first ``Links.Chassis`` path of a ComputerSystem body; ``BmcBadAnswer`` if none."""
    links = system.get("Links")
    chassis = links.get("Chassis") if isinstance(links, dict) else None
    if isinstance(chassis, list):
        for member in chassis:
            found = link(member)
            if found is not None:
                return found
    raise BmcBadAnswer(f"{system_path} links no Chassis (ComputerSystem.Links.Chassis)")


async def read_chassis(get: Getter, chassis_path: str, choice: SchemaChoice) -> ChassisReading:
    """GET the chassis and read its power and inlet in the chosen schema.

    Raises ``BmcError`` when the chassis itself cannot be read; a missing
    sub-resource only makes its part unknown.
    """
    _, chassis = await get(chassis_path)
    why: list[str] = []
    absent: dict[str, str] = {}
    power = await _power(get, chassis, choice, why, absent)
    inlet = await _inlet(get, chassis, choice, why, absent)
    return ChassisReading(chassis_path, text(chassis.get("PowerState")), power, inlet, why, absent)


async def _power(
    get: Getter,
    chassis: dict[str, Any],
    choice: SchemaChoice,
    why: list[str],
    absent: dict[str, str],
) -> ChassisPower | None:
    subsystem = link(chassis.get("PowerSubsystem")) if choice != "legacy" else None
    legacy = link(chassis.get("Power")) if choice != "subsystem" else None
    reading: ChassisPower | None = None
    if subsystem is not None:
        body, reason = await get_optional(get, subsystem)
        if body is None:
            why.append(reason)
        else:
            metrics = link(chassis.get("EnvironmentMetrics"))
            reading = await read_subsystem_power(get, body, metrics)
            if reading.watts is not None or legacy is None:
                return reading
    if legacy is not None:
        body, reason = await get_optional(get, legacy)
        if body is None:
            why.append(reason)
            return reading
        old = legacy_power(body)
        if reading is None:
            return old
        # The newer schema lacked the draw: take the watts from the legacy one, say so.
        return ChassisPower(
            reading.schema,
            old.watts,
            old.source,
            reading.supplies,
            reading.redundancy,
            [*reading.why, *old.why] if old.watts is None else [],
        )
    if subsystem is None and legacy is None:
        _not_linked(chassis, choice, ("PowerSubsystem", "Power"), "power", why, absent)
    return reading


async def _inlet(
    get: Getter,
    chassis: dict[str, Any],
    choice: SchemaChoice,
    why: list[str],
    absent: dict[str, str],
) -> InletReading | None:
    subsystem = link(chassis.get("ThermalSubsystem")) if choice != "legacy" else None
    legacy = link(chassis.get("Thermal")) if choice != "subsystem" else None
    reading: InletReading | None = None
    if subsystem is not None:
        body, reason = await get_optional(get, subsystem)
        metrics = link(body.get("ThermalMetrics")) if body else None
        if metrics is None:
            why.append(reason or "ThermalSubsystem links no ThermalMetrics")
        else:
            values, reason = await get_optional(get, metrics)
            if values is None:
                why.append(reason)
            else:
                reading = subsystem_inlet(values)
                if reading.celsius is not None:
                    return reading
    if legacy is not None:
        body, reason = await get_optional(get, legacy)
        if body is None:
            why.append(reason)
            return reading
        old = legacy_inlet(body)
        return old if old.celsius is not None or reading is None else reading
    if subsystem is None and legacy is None:
        _not_linked(chassis, choice, ("ThermalSubsystem", "Thermal"), "inlet", why, absent)
    return reading


def _not_linked(
    chassis: dict[str, Any],
    choice: SchemaChoice,
    names: tuple[str, str],
    part: str,
    why: list[str],
    absent: dict[str, str],
) -> None:
    """Neither of ``names`` (newer, legacy) was read: not offered, or excluded by ``choice``."""
    newer, legacy = names
    if link(chassis.get(newer)) is None and link(chassis.get(legacy)) is None:
        absent[part] = f"the chassis links no {newer} nor {legacy}"
    else:  # the BMC offers the other schema, which rack_power_schema excludes: not read
        wanted, other = (newer, legacy) if choice == "subsystem" else (legacy, newer)
        why.append(f"the chassis links no {wanted} (rack_power_schema: {choice}; it links {other})")
