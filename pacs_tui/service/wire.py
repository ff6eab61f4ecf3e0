"""The service's JSON shapes for readings, shared by ``pacs-tui serve`` and its viewers.

One reading travels as::

    {"server": "arc-01", "probe": "power",
     "result": {"state": "On", "health": "ok", "latency_ms": 12.5, "detail": "",
                "observed_at": 1764566400.25, "facts": {...}},
     "due_s": 91.0}

``observed_at`` is the service's ``time.time()`` (seconds since the epoch);
``due_s`` is when, in seconds after it, the service expects the next result
(``FleetState.expect_next``), null when it has none. A snapshot entry adds
``history`` (latencies in ms, null where the probe failed, oldest first) and
``changes`` (the health-change log flap detection reads). Facts are made
JSON-safe here: tuples and sets become lists, anything else unknown a string;
the plugin contract already forbids secrets in facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from pacs_tui.flapping import HealthChange
from pacs_tui.plugin_api import Health, ProbeResult
from pacs_tui.state import FleetState

WireReading = dict[str, Any]


class WireError(ValueError):
    """A reading from the service did not have the documented shape."""


def plain(value: Any) -> Any:
    """``value`` as JSON-safe data (dicts, lists, str, numbers, bools, None)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return str(value)


def result_to_wire(result: ProbeResult) -> dict[str, Any]:
    """A ``ProbeResult`` as JSON-safe data."""
    return {
        "state": result.state,
        "health": result.health.value,
        "latency_ms": result.latency_ms,
        "detail": result.detail,
        "observed_at": result.observed_at,
        "facts": plain(result.facts),
    }


def result_from_wire(data: Any) -> ProbeResult:
    """The ``ProbeResult`` of ``result_to_wire``; ``WireError`` when malformed."""
    try:
        latency = data["latency_ms"]
        facts = data.get("facts") or {}
        if not isinstance(facts, dict):
            raise TypeError("facts is not an object")
        return ProbeResult(
            state=str(data["state"]),
            health=Health(data["health"]),
            latency_ms=None if latency is None else float(latency),
            detail=str(data.get("detail", "")),
            observed_at=float(data["observed_at"]),
            facts=facts,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise WireError(f"bad reading result: {exc}") from None


def reading_to_wire(state: FleetState, server: str, probe: str) -> WireReading | None:
    """The latest reading of one key as an update (None when there is no result yet)."""
    result = state.latest(server, probe)
    if result is None:
        return None
    return {
        "server": server,
        "probe": probe,
        "result": result_to_wire(result),
        "due_s": state.due(server, probe),
    }


def snapshot_entry(state: FleetState, server: str, probe: str) -> WireReading | None:
    """An update with its history and health-change log, for a snapshot."""
    entry = reading_to_wire(state, server, probe)
    if entry is None:
        return None
    entry["history"] = state.history(server, probe)
    entry["changes"] = [
        {"at": c.at, "before": c.before.value, "after": c.after.value, "detail": c.detail}
        for c in state.changes(server, probe)
    ]
    return entry


def apply_reading(state: FleetState, entry: Any, *, offset_s: float = 0.0) -> None:
    """Put one update or snapshot entry into a mirror's ``state``.

    ``offset_s`` is added to every time (the viewer's clock minus the
    service's), so ages read the same on both sides. ``WireError`` when
    malformed.
    """
    try:
        server, probe = str(entry["server"]), str(entry["probe"])
        result = result_from_wire(entry["result"])
        due = entry.get("due_s")
        due_s = None if due is None else float(due)
        history = [None if v is None else float(v) for v in entry.get("history") or []]
        changes = [
            HealthChange(
                float(c["at"]) + offset_s, Health(c["before"]), Health(c["after"]), str(c["detail"])
            )
            for c in entry.get("changes") or []
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise WireError(f"bad reading: {exc}") from None
    if offset_s:
        result = ProbeResult(
            result.state, result.health, result.latency_ms, result.detail,
            result.observed_at + offset_s, result.facts,
        )  # fmt: skip
    if "history" in entry:
        state.restore(server, probe, result, due_s=due_s, history=history, changes=changes)
        return
    state.record(server, probe, result)
    if due_s is not None:
        state.expect_next(server, probe, due_s)
