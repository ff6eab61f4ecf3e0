"""The rack-power probe's settings and its verdict on one chassis reading.

Verdict rules, worst first (one reading may carry several findings; the
detail lists them all, the state and health are the worst one's):

1. inlet at or above ``crit_c`` → ``inlet-hot``, DOWN (do not power on here:
   cooling is not up);
2. a present power supply without input, with Health Warning/Critical, or a
   redundancy group the BMC reports lost → ``psu-fault``, DEGRADED, naming the
   supply;
3. inlet at or above ``warn_c`` → ``inlet-warm``, DEGRADED;
4. anything not read (draw, supply list, inlet, a supply with neither health
   nor input status) → ``unknown``, UNKNOWN, saying what and why;
5. a chassis that links neither power nor thermal resources at all (a BMC
   without that telemetry: a lasting capability, not a failed read) →
   ``not-offered``, OK, saying so; one that lacks only one of them is judged
   on the other, and the detail says which part it does not offer;
6. otherwise ``ok``.

Defaults follow ASHRAE TC 9.9 (Thermal Guidelines for Data Processing
Environments): 27 °C is the top of the recommended inlet envelope, 35 °C the
top of the allowable envelope of class A2, where most servers are rated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pacs_tui.inventory import Server
from pacs_tui.plugin_api import Health
from pacs_tui_redfish_power.chassis_power import BAD_HEALTH, ChassisPower
from pacs_tui_redfish_power.chassis_reading import ChassisReading, SchemaChoice

__all__ = ["RackPowerSettings", "Verdict", "judge"]

DEFAULT_INLET_WARN_C = 27.0
DEFAULT_INLET_CRIT_C = 35.0
DEFAULT_INTERVAL_S = 60.0  # draw, PSUs and inlet move slowly; each read costs ~2 ms CPU here


@dataclass(frozen=True)
class RackPowerSettings:
    """The ``rack_power_*`` settings, checked once when the probe opens.

    - ``rack_power_inlet_warn_c`` / ``rack_power_inlet_crit_c`` (°C, defaults 27 / 35);
    - ``rack_power_inlet_by_site``: ``{SITE: {warn_c: N, crit_c: N}}`` for a
      site whose cooling differs (e.g. the new hall before its chillers are tuned);
    - ``rack_power_schema``: ``auto`` (default: the newer schema where linked),
      ``subsystem`` or ``legacy``, to force one on BMCs whose other one is wrong;
    - ``rack_power_interval_s`` (default 60 s: power and temperature move slowly).

    ``ValueError`` names a bad setting.
    """

    warn_c: float = DEFAULT_INLET_WARN_C
    crit_c: float = DEFAULT_INLET_CRIT_C
    by_site: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    schema: SchemaChoice = "auto"
    interval_s: float = DEFAULT_INTERVAL_S

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RackPowerSettings:
        """Read and check the settings."""
        warn = _number(settings, "rack_power_inlet_warn_c", DEFAULT_INLET_WARN_C)
        crit = _number(settings, "rack_power_inlet_crit_c", DEFAULT_INLET_CRIT_C)
        _ordered(warn, crit, "rack_power_inlet")
        by_site: dict[str, tuple[float, float]] = {}
        raw = settings.get("rack_power_inlet_by_site") or {}
        if not isinstance(raw, Mapping):
            raise ValueError("rack_power_inlet_by_site must map a site to {warn_c, crit_c}")
        for site, limits in raw.items():
            if not isinstance(limits, Mapping):
                raise ValueError(f"rack_power_inlet_by_site.{site} must be {{warn_c, crit_c}}")
            key = f"rack_power_inlet_by_site.{site}"
            pair = (
                _number(limits, "warn_c", warn, key),
                _number(limits, "crit_c", crit, key),
            )
            _ordered(*pair, key)
            by_site[str(site)] = pair
        schema = settings.get("rack_power_schema", "auto")
        if schema not in ("auto", "subsystem", "legacy"):
            raise ValueError(
                f"rack_power_schema must be 'auto', 'subsystem' or 'legacy', not {schema!r}"
            )
        interval = _number(settings, "rack_power_interval_s", DEFAULT_INTERVAL_S)
        if interval <= 0:
            raise ValueError("rack_power_interval_s must be > 0")
        return cls(warn, crit, by_site, schema, interval)

    def limits(self, server: Server) -> tuple[float, float]:
        """(warn_c, crit_c) for ``server``'s site."""
        return self.by_site.get(server.site, (self.warn_c, self.crit_c))


def _number(settings: Mapping[str, Any], key: str, default: float, where: str = "") -> float:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        name = f"{where}.{key}" if where else key
        raise ValueError(f"{name} must be a number, not {value!r}")
    return float(value)


def _ordered(warn: float, crit: float, where: str) -> None:
    if not warn < crit:
        raise ValueError(f"{where}: warn_c ({warn:g}) must be below crit_c ({crit:g})")


@dataclass(frozen=True)
class Verdict:
    """The state word, health, detail notes and facts of one reading."""

    state: str
    health: Health
    notes: list[str]
    facts: dict[str, Any]


def judge(reading: ChassisReading, warn_c: float, crit_c: float) -> Verdict:
    """Apply the rules of this module to ``reading``."""
    hot: list[str] = []
    faults: list[str] = []
    warm: list[str] = []
    unknown: list[str] = list(reading.why)
    power, inlet = reading.power, reading.inlet
    if power is not None:
        faults.extend(_supply_faults(power, unknown))
        if power.watts is None or power.supplies is None:
            unknown.extend(power.why or ["power draw or supplies not reported"])
    celsius = inlet.celsius if inlet is not None else None
    if inlet is not None and celsius is None:
        unknown.append(inlet.why or "inlet temperature not reported")
    elif celsius is not None and celsius >= crit_c:
        hot.append(f"inlet {celsius:.1f} °C ≥ {crit_c:g} °C critical")
    elif celsius is not None and celsius >= warn_c:
        warm.append(f"inlet {celsius:.1f} °C ≥ {warn_c:g} °C warning")
    if hot:
        state, health = "inlet-hot", Health.DOWN
    elif faults:
        state, health = "psu-fault", Health.DEGRADED
    elif warm:
        state, health = "inlet-warm", Health.DEGRADED
    elif unknown:
        state, health = "unknown", Health.UNKNOWN
    elif {"power", "inlet"} <= reading.not_offered.keys():
        state, health = "not-offered", Health.OK
    else:
        state, health = "ok", Health.OK
    notes = [*hot, *faults, *warm, *_values(power, celsius, inlet)]
    unread = list(dict.fromkeys(unknown))
    if unread:
        notes.append("unknown: " + ", ".join(unread))
    notes.extend(
        f"{part} not offered by this BMC ({why})" for part, why in reading.not_offered.items()
    )
    # What was not read and why, as data: the batch engine says why a draw is missing.
    return Verdict(state, health, notes, {**_facts(reading, warn_c, crit_c), "unread": unread})


def _supply_faults(power: ChassisPower, unknown: list[str]) -> list[str]:
    faults: list[str] = []
    supplies = power.supplies
    if supplies is None:
        return faults  # why is in power.why
    present = [s for s in supplies if not s.absent]
    if not present:
        unknown.append("no power supply present")
    for supply in present:
        if supply.input_ok is False:
            faults.append(f"{supply.name} without input ({supply.input_note})")
        elif supply.health in BAD_HEALTH:
            reason = f": {supply.condition}" if supply.condition else ""
            faults.append(f"{supply.name} health {supply.health}{reason}")
        elif supply.health is None and supply.input_ok is None:
            unknown.append(f"{supply.name}: neither health nor input reported")
    for group in power.redundancy:
        if group.lost:
            word = group.health if group.health in BAD_HEALTH else group.state
            mode = f" ({group.mode})" if group.mode else ""
            faults.append(f"power supply redundancy{mode} {word}")
    return faults


def _values(power: ChassisPower | None, celsius: float | None, inlet: Any) -> list[str]:
    notes = []
    if power is not None and power.watts is not None:
        notes.append(f"{power.watts:g} W ({power.schema}: {power.source})")
    if celsius is not None:
        notes.append(f"inlet {celsius:.1f} °C ({inlet.source})")
    return notes


def _facts(reading: ChassisReading, warn_c: float, crit_c: float) -> dict[str, Any]:
    power, inlet = reading.power, reading.inlet
    supplies = power.supplies if power is not None else None
    return {
        "chassis_path": reading.chassis_path,
        "chassis_power_state": reading.power_state,
        "watts": power.watts if power is not None else None,
        "watts_source": power.source if power is not None else None,
        "power_schema": power.schema if power is not None else None,
        "supplies": [s.to_json() for s in supplies] if supplies is not None else None,
        "redundancy": [g.to_json() for g in power.redundancy] if power is not None else [],
        "inlet_c": inlet.celsius if inlet is not None else None,
        "inlet_source": inlet.source if inlet is not None else None,
        "inlet_sensor": inlet.sensor if inlet is not None else None,
        "inlet_warn_c": warn_c,
        "inlet_crit_c": crit_c,
        "not_offered": sorted(reading.not_offered),
    }
