"""A chassis's power draw, power supplies and their redundancy, from either Redfish power schema.

Two schemas say the same things (DSP0268, Redfish Resource and Schema Guide):

- **PowerSubsystem** (``PowerSubsystem.v1``, since Redfish 2020.4; linked as
  ``Chassis.PowerSubsystem``): ``PowerSupplies`` is a collection of
  ``PowerSupply.v1`` resources (``Status``, ``LineInputStatus``:
  ``Normal`` / ``LossOfInput`` / ``OutOfRange``, ``Location.PartLocation.ServiceLabel``),
  each with ``Metrics`` (``PowerSupplyMetrics.v1``: ``InputPowerWatts``,
  ``InputVoltage``); redundancy is ``PowerSupplyRedundancy[]``
  (``RedundancyGroup``, ``Status``). The chassis draw is
  ``Chassis.EnvironmentMetrics`` (``EnvironmentMetrics.v1``) ``PowerWatts``,
  else the sum of the supplies' ``InputPowerWatts``.
- **Power** (``Power.v1``, deprecated since 2020.4 but what most fielded BMCs
  serve; ``Chassis.Power``): ``PowerControl[].PowerConsumedWatts``,
  ``PowerSupplies[]`` (``Status``, ``LineInputVoltage``) and ``Redundancy[]``.

Where a chassis links both, the newer one is read; the reading says which
(``source``). Every value that could not be read is None: never 0 W, never
"no fault". Watts are W, volts V.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from pacs_tui_redfish_power.bounded_http import link
from pacs_tui_redfish_power.excerpts import (
    MAX_MEMBERS,
    Getter,
    excerpt,
    get_optional,
    number,
    status,
    text,
)

__all__ = [
    "ChassisPower",
    "PowerSupplyReading",
    "RedundancyReading",
    "legacy_power",
    "read_subsystem_power",
]

Schema = Literal["PowerSubsystem", "Power"]

# LineInputStatus words (PowerSupply.v1_5+) meaning the supply has no usable input.
_NO_INPUT = ("LossOfInput", "OutOfRange")
# Status.State words that mean a redundancy group is not protecting anything now.
_REDUNDANCY_DOWN_STATES = ("UnavailableOffline", "Degraded")
BAD_HEALTH = ("Warning", "Critical")


@dataclass(frozen=True)
class PowerSupplyReading:
    """One power supply as its BMC reports it.

    ``label`` is what is printed on the chassis (``PSU 1``: the
    ``ServiceLabel``, else ``Name``); ``member`` is the Redfish Id or
    MemberId. ``input_ok`` is False when the supply has no usable input
    (``LineInputStatus`` LossOfInput/OutOfRange, or a legacy
    ``LineInputVoltage`` of 0 V), True when the BMC says it has input, None
    when it does not say. ``input_watts`` is the supply's own input power
    (W), None when not reported.
    """

    label: str
    member: str
    state: str | None  # Status.State: Enabled, Absent, UnavailableOffline, ...
    health: str | None  # Status.Health: OK, Warning, Critical
    input_ok: bool | None
    input_note: str  # what the BMC said about the input, for the detail
    input_watts: float | None = None
    input_volts: float | None = None
    condition: str = ""  # the first Status.Conditions[].Message, when present

    @property
    def absent(self) -> bool:
        """An empty bay (``State: Absent``): by design on a one-supply server."""
        return self.state == "Absent"

    @property
    def name(self) -> str:
        """``PSU 1 (Bay1)``: the label, and the Redfish id when it differs."""
        return self.label if self.label == self.member else f"{self.label} ({self.member})"

    def to_json(self) -> dict[str, Any]:
        """The supply as JSON-able data, for a reading's facts."""
        return {
            "label": self.label,
            "member": self.member,
            "state": self.state,
            "health": self.health,
            "input_ok": self.input_ok,
            "input": self.input_note,
            "input_watts": self.input_watts,
            "input_volts": self.input_volts,
        }


@dataclass(frozen=True)
class RedundancyReading:
    """One redundancy group of power supplies (``Redundancy`` or ``PowerSupplyRedundancy``)."""

    mode: str | None  # Mode (legacy: N+m, Failover ...) or RedundancyType (NPlusM, Failover)
    state: str | None
    health: str | None
    members: int  # supplies in the group (RedundancySet / RedundancyGroup)

    @property
    def lost(self) -> bool:
        """True when the BMC says the group does not protect the server now."""
        return self.health in BAD_HEALTH or self.state in _REDUNDANCY_DOWN_STATES

    def to_json(self) -> dict[str, Any]:
        """The group as JSON-able data, for a reading's facts."""
        return {"mode": self.mode, "state": self.state, "health": self.health}


@dataclass(frozen=True)
class ChassisPower:
    """What one chassis says about its power, from one schema.

    ``watts`` is the chassis input power in W (None: not read, with ``why``);
    ``source`` names the property it came from, e.g.
    ``EnvironmentMetrics.PowerWatts``. ``supplies`` is None when the supply
    list could not be read (not the same as an empty list).
    """

    schema: Schema
    watts: float | None
    source: str
    supplies: tuple[PowerSupplyReading, ...] | None
    redundancy: tuple[RedundancyReading, ...] = ()
    why: list[str] = field(default_factory=list)  # what could not be read, and why


# -- the legacy Power resource (Power.v1) ------------------------------------------


def legacy_power(body: dict[str, Any]) -> ChassisPower:
    """Read a ``Power.v1`` body (one GET; no links followed)."""
    why: list[str] = []
    watts, source = None, "Power.PowerControl[].PowerConsumedWatts"
    controls = body.get("PowerControl")
    if isinstance(controls, list):
        # PowerControl[0] is the chassis input by convention; take the first with a value.
        for index, control in enumerate(controls[:MAX_MEMBERS]):
            found = number(control.get("PowerConsumedWatts")) if isinstance(control, dict) else None
            if found is not None:
                watts, source = found, f"Power.PowerControl[{index}].PowerConsumedWatts"
                break
    if watts is None:
        why.append("Power has no PowerControl[].PowerConsumedWatts")
    raw = body.get("PowerSupplies")
    supplies = None
    if isinstance(raw, list):
        supplies = tuple(
            _legacy_supply(s, i) for i, s in enumerate(raw[:MAX_MEMBERS]) if isinstance(s, dict)
        )
    else:
        why.append("Power has no PowerSupplies list")
    return ChassisPower(
        "Power", watts, source, supplies, _redundancy(body.get("Redundancy"), "Mode"), why
    )


def _legacy_supply(body: dict[str, Any], index: int) -> PowerSupplyReading:
    state, health = status(body)
    member = text(body.get("MemberId")) or str(index)
    volts = number(body.get("LineInputVoltage"))
    if volts is None:
        input_ok, note = None, "LineInputVoltage not reported"
    else:
        input_ok, note = volts > 0, f"LineInputVoltage {volts:g} V"
    return PowerSupplyReading(
        label=text(body.get("Name")) or f"PSU {member}",
        member=member,
        state=state,
        health=health,
        input_ok=input_ok,
        input_note=note,
        input_watts=number(body.get("PowerInputWatts")),
        input_volts=volts,
    )


def _redundancy(raw: Any, mode_key: str) -> tuple[RedundancyReading, ...]:
    if not isinstance(raw, list):
        return ()
    groups = []
    for group in raw[:MAX_MEMBERS]:
        if not isinstance(group, dict):
            continue
        state, health = status(group)
        members = group.get("RedundancySet", group.get("RedundancyGroup"))
        groups.append(
            RedundancyReading(
                text(group.get(mode_key)),
                state,
                health,
                len(members) if isinstance(members, list) else 0,
            )
        )
    return tuple(groups)


# -- the PowerSubsystem (PowerSubsystem.v1, PowerSupply.v1, PowerSupplyMetrics.v1) --


async def read_subsystem_power(
    get: Getter, subsystem: dict[str, Any], environment_metrics: str | None
) -> ChassisPower:
    """Read a ``PowerSubsystem.v1`` body and what it links (supplies, their Metrics).

    ``environment_metrics`` is the path of ``Chassis.EnvironmentMetrics``, if
    linked. Raises ``BmcError`` only when the BMC stops answering; a missing
    or malformed sub-resource makes its values unknown (``why``).
    """
    why: list[str] = []
    redundancy = _redundancy(subsystem.get("PowerSupplyRedundancy"), "RedundancyType")
    supplies: tuple[PowerSupplyReading, ...] | None = None
    collection = link(subsystem.get("PowerSupplies"))
    if collection is None:
        why.append("PowerSubsystem links no PowerSupplies")
    else:
        members, reason = await get_optional(get, collection)
        paths = _member_paths(members)
        if paths is None:
            why.append(reason or f"{collection} is not a collection")
        else:
            read = await asyncio.gather(*(_subsystem_supply(get, p) for p in paths))
            supplies = tuple(s for s, _ in read)
            why.extend(w for _, w in read if w)
    watts, source, unread = None, "EnvironmentMetrics.PowerWatts", ""
    if environment_metrics is not None:
        metrics, reason = await get_optional(get, environment_metrics)
        watts = excerpt(metrics.get("PowerWatts")) if metrics else None
        unread = reason or "EnvironmentMetrics has no PowerWatts reading"
    if watts is None and supplies:
        present = [s for s in supplies if not s.absent]
        values = [s.input_watts for s in present]
        if present and all(v is not None for v in values):
            watts = sum(v for v in values if v is not None)
            source = f"PowerSupplyMetrics.InputPowerWatts (sum of {len(present)})"
    if watts is None:
        source = "PowerSubsystem"
        why.append(unread or "no EnvironmentMetrics.PowerWatts nor every supply's InputPowerWatts")
    return ChassisPower("PowerSubsystem", watts, source, supplies, redundancy, why)


def _member_paths(collection: dict[str, Any] | None) -> list[str] | None:
    if collection is None:
        return None
    members = collection.get("Members")
    if not isinstance(members, list):
        return None
    paths = [link(m) for m in members[:MAX_MEMBERS]]
    return [p for p in paths if p is not None]


async def _subsystem_supply(get: Getter, path: str) -> tuple[PowerSupplyReading, str]:
    member = path.rstrip("/").rsplit("/", 1)[-1]
    body, reason = await get_optional(get, path)
    if body is None:
        unread = PowerSupplyReading(member, member, None, None, None, "not readable")
        return unread, reason
    state, health = status(body)
    line = text(body.get("LineInputStatus"))
    if line is None:
        input_ok, note = None, "LineInputStatus not reported"
    else:
        input_ok, note = line not in _NO_INPUT, f"LineInputStatus {line}"
    watts = volts = None
    why = ""
    metrics = link(body.get("Metrics"))
    if metrics is not None and state != "Absent":
        values, reason = await get_optional(get, metrics)
        if values is None:
            why = reason
        else:
            watts = excerpt(values.get("InputPowerWatts"))
            volts = excerpt(values.get("InputVoltage"))
    location = body.get("Location")
    part = location.get("PartLocation") if isinstance(location, dict) else None
    label = text(part.get("ServiceLabel")) if isinstance(part, dict) else None
    return (
        PowerSupplyReading(
            label=label or text(body.get("Name")) or member,
            member=text(body.get("Id")) or member,
            state=state,
            health=health,
            input_ok=input_ok,
            input_note=note,
            input_watts=watts,
            input_volts=volts,
            condition=_first_condition(body),
        ),
        why,
    )


def _first_condition(body: dict[str, Any]) -> str:
    found = body.get("Status")
    conditions = found.get("Conditions") if isinstance(found, dict) else None
    if isinstance(conditions, list):
        for condition in conditions:
            if isinstance(condition, dict) and (message := text(condition.get("Message"))):
                return message[:160]
    return ""
