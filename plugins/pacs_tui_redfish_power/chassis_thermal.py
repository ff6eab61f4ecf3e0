"""A chassis's inlet (intake) air temperature, from either Redfish thermal schema.

DSP0268 (Redfish Resource and Schema Guide) offers two:

- **ThermalSubsystem** (``ThermalSubsystem.v1``, since 2020.4, ``Chassis.ThermalSubsystem``)
  links ``ThermalMetrics`` (``ThermalMetrics.v1``): the inlet is
  ``TemperatureSummaryCelsius.Intake.Reading``, else the hottest
  ``TemperatureReadingsCelsius[]`` whose ``DeviceName`` says intake or inlet.
- **Thermal** (``Thermal.v1``, deprecated but common, ``Chassis.Thermal``):
  the hottest ``Temperatures[]`` member with ``PhysicalContext: Intake`` (or,
  without one, a ``Name`` containing "inlet" or "intake") and a
  ``ReadingCelsius``; members whose ``Status.State`` is not ``Enabled`` are
  skipped (a disabled sensor's last value is not today's air).

The hottest sensor is taken because an alarm on the warmest inlet is the
one that matters. Degrees Celsius; None when no inlet sensor gave a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pacs_tui_redfish_power.excerpts import MAX_MEMBERS, excerpt, number, status, text

__all__ = ["InletReading", "legacy_inlet", "subsystem_inlet"]

_INLET_WORDS = ("inlet", "intake")


@dataclass(frozen=True)
class InletReading:
    """The inlet temperature in °C (None: unknown, ``why`` says why) and where it came from."""

    celsius: float | None
    schema: Literal["ThermalSubsystem", "Thermal"]
    source: str  # e.g. "ThermalMetrics.TemperatureSummaryCelsius.Intake"
    sensor: str = ""  # the sensor's name, when the schema gives one
    why: str = ""


def legacy_inlet(body: dict[str, Any]) -> InletReading:
    """The inlet of a ``Thermal.v1`` body."""
    members = body.get("Temperatures")
    if not isinstance(members, list):
        return InletReading(None, "Thermal", "Thermal", why="Thermal has no Temperatures list")
    candidates = [m for m in members[:MAX_MEMBERS] if isinstance(m, dict)]
    intake = [m for m in candidates if m.get("PhysicalContext") == "Intake"]
    if not intake:
        intake = [m for m in candidates if _says_inlet(m.get("Name"))]
    best: tuple[float, str] | None = None
    for member in intake:
        state, _ = status(member)
        celsius = number(member.get("ReadingCelsius"))
        if celsius is None or state not in (None, "Enabled"):
            continue
        if best is None or celsius > best[0]:
            best = (celsius, text(member.get("Name")) or "intake")
    if best is None:
        why = "no Intake sensor in Thermal.Temperatures" if not intake else "no Intake reading"
        return InletReading(None, "Thermal", "Thermal.Temperatures", why=why)
    return InletReading(best[0], "Thermal", "Thermal.Temperatures[].ReadingCelsius", best[1])


def subsystem_inlet(metrics: dict[str, Any]) -> InletReading:
    """The inlet of a ``ThermalMetrics.v1`` body (linked from ``ThermalSubsystem``)."""
    summary = metrics.get("TemperatureSummaryCelsius")
    intake = excerpt(summary.get("Intake")) if isinstance(summary, dict) else None
    if intake is not None:
        return InletReading(
            intake, "ThermalSubsystem", "ThermalMetrics.TemperatureSummaryCelsius.Intake"
        )
    readings = metrics.get("TemperatureReadingsCelsius")
    best: tuple[float, str] | None = None
    if isinstance(readings, list):
        for member in readings[:MAX_MEMBERS]:
            if not isinstance(member, dict) or not _says_inlet(member.get("DeviceName")):
                continue
            celsius = excerpt(member)
            if celsius is not None and (best is None or celsius > best[0]):
                best = (celsius, str(member.get("DeviceName")))
    if best is None:
        return InletReading(
            None, "ThermalSubsystem", "ThermalMetrics", why="ThermalMetrics has no intake reading"
        )
    source = "ThermalMetrics.TemperatureReadingsCelsius[].Reading"
    return InletReading(best[0], "ThermalSubsystem", source, best[1])


def _says_inlet(name: Any) -> bool:
    return isinstance(name, str) and any(w in name.lower() for w in _INLET_WORDS)
