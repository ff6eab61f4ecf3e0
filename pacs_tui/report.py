"""Plain views of FleetState for the CLI, JSON output and roll-ups (no UI here)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from pacs_tui.inventory import Server
from pacs_tui.plugin_api import Health
from pacs_tui.rollup import BMC_ONLY, BMC_ONLY_DEGRADED, bmc_only
from pacs_tui.state import FleetState

STANDARD_PROBES = ("power", "network", "dicom", "ssh")
NOT_APPLICABLE = "n/a"


def probe_view(state: FleetState, server: str, probe: str, now: float) -> dict[str, Any]:
    """``{state, health, latency_ms, detail, age_s}`` of one probe on one server.

    A flapping probe has state ``flapping``, its worst health, and a
    ``flapping`` entry: ``{failures, period_s, detail}``.
    """
    reading = state.reading(server, probe, now)
    result = reading.result
    word = reading.state
    if probe == "power" and word in ("unknown", "stale"):
        word = "Unknown" if word == "unknown" else word
    return {
        "state": word,
        "health": str(reading.health),
        "latency_ms": None
        if result is None or result.latency_ms is None
        else round(result.latency_ms, 2),
        "detail": "" if result is None else result.detail,
        "age_s": None if reading.age_s is None else round(reading.age_s, 1),
        # How a BMC is spoken to, when the probe says (auth fallback, weakened TLS).
        **{k: result.facts[k] for k in _SHOWN_FACTS if result is not None and k in result.facts},
        **(
            {}
            if reading.flap is None
            else {
                "flapping": {
                    "failures": reading.flap.failures,
                    "period_s": round(reading.flap.period_s, 1),
                    "detail": reading.flap.describe(),
                }
            }
        ),
    }


# Facts of a reading that ``status --json`` shows: the operator must see a
# Basic-auth fallback or a TLS check turned off without opening the UI, and the
# rack-power probe's draw (W) and inlet (°C), None when not read.
_SHOWN_FACTS = ("auth", "tls", "watts", "inlet_c")


def not_applicable(probe: str, server: Server) -> dict[str, Any]:
    """The view of a probe that does not apply (e.g. DICOM on a storage array)."""
    return {
        "state": "Unknown" if probe == "power" else NOT_APPLICABLE,
        "health": NOT_APPLICABLE,
        "latency_ms": None,
        "detail": f"no {'bmc' if probe == 'power' else probe} endpoint in the inventory",
        "age_s": None,
    }


def server_view(
    server: Server,
    state: FleetState,
    applicable: Iterable[str],
    probes: Sequence[str] = STANDARD_PROBES,
    now: float | None = None,
) -> dict[str, Any]:
    """One server as ``pacs-tui status --json`` prints it."""
    now = time.time() if now is None else now
    applies = set(applicable)
    view: dict[str, Any] = {"name": server.name, "site": server.site, "role": server.role}
    names = list(probes) + sorted(p for p in state.probes if p not in probes)
    for probe in names:
        if probe in applies:
            view[probe] = probe_view(state, server.name, probe, now)
        else:
            view[probe] = not_applicable(probe, server)
    view["healthy"] = server_healthy(view, applies)
    readings = {p: state.reading(server.name, p, now) for p in names if p in applies}
    if bmc_only(readings):
        serving = all(r.health is Health.OK for p, r in readings.items() if p != "power")
        # A management-network fault: the server serves, but cannot be power-cycled now.
        view["management"] = BMC_ONLY if serving else BMC_ONLY_DEGRADED
    return view


def server_healthy(view: dict[str, Any], applicable: Iterable[str]) -> bool:
    """Every applicable probe is OK."""
    return all(view[p]["health"] == Health.OK for p in applicable)
