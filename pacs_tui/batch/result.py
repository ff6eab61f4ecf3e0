"""What a batch did: every server's ``ServerStatus`` and the batch's ``BatchResult``.

The runner fills a ``BatchResult`` as servers end; the CLI, the control room
and the rehearsal read it (``to_json`` is what ``pacs-tui power --json``
prints last). Pure data: nothing here reads or changes the fleet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ServerStatus(StrEnum):
    """How a server ended up."""

    REACHED = "reached"  # at the verb's target, verified
    SKIPPED = "skipped"  # was already there; nothing sent
    FAILED = "failed"
    LEFT_OUT = "left-out"  # a server it needs (or that needs it) failed
    NOT_RUN = "not-run"  # the batch halted first
    ABORTED = "aborted"  # the operator aborted before it finished
    # The process running the batch stopped before saying how this server ended
    # (a service killed mid-batch): read its state back before acting on it again.
    UNKNOWN = "unknown"


# The statuses of a server that ended where the verb wanted it.
FINE = (ServerStatus.REACHED, ServerStatus.SKIPPED)


@dataclass
class ServerResult:
    """The end of one server's part of the batch."""

    server: str
    wave: int
    status: ServerStatus
    detail: str = ""
    started: float | None = None  # time.monotonic()
    ended: float | None = None

    @property
    def duration_s(self) -> float:
        """Seconds from its first step to its result (0 when nothing ran)."""
        if self.started is None or self.ended is None:
            return 0.0
        return self.ended - self.started

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-able data."""
        return {
            "server": self.server,
            "wave": self.wave,
            "status": str(self.status),
            "detail": self.detail,
            "duration_s": round(self.duration_s, 3),
        }


@dataclass
class WaveTiming:
    """When a wave ran, and its slowest server (for the critical path)."""

    index: int
    started: float
    ended: float
    slowest_s: float

    @property
    def duration_s(self) -> float:
        """Wall time of the wave."""
        return self.ended - self.started


@dataclass
class BatchResult:
    """What a batch did to every server of its plan."""

    batch: str
    verb: str
    servers: dict[str, ServerResult] = field(default_factory=dict)
    waves: list[WaveTiming] = field(default_factory=list)
    aborted: bool = False
    halted: bool = False
    interrupted: bool = False  # its process stopped mid-batch: no end was recorded
    elapsed_s: float = 0.0
    # Servers not at target whose PACS units were stopped: read On at the end, or
    # neither On nor Off then (unreadable, PoweringOff...); server → the units stopped.
    units_stopped_on: dict[str, tuple[str, ...]] = field(default_factory=dict)
    units_stopped_unknown: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Racks' power budgets: key -> {budget_w, expected_peak_w, measured_peak_w} (W);
    # measured_peak_w is None when no draw of the rack was read.
    budget_peaks: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every server reached its target (or already was there)."""
        return all(r.status in FINE for r in self.servers.values())

    @property
    def critical_path_s(self) -> float:
        """Sum over waves of the slowest server in the wave."""
        return sum(w.slowest_s for w in self.waves)

    def stranded_lines(self) -> list[str]:
        """Lines naming servers left running (or unreadable) with their PACS units stopped.

        ``["2 servers still On with their PACS units stopped: arch-001 (pacs,
        pacs-archive), web-002 (pacs-web)"]``; empty when there are none.
        """
        lines = []
        for servers, what in (
            (self.units_stopped_on, "still On"),
            (self.units_stopped_unknown, "not confirmed Off"),
        ):
            if servers:
                names = ", ".join(f"{n} ({', '.join(u)})" for n, u in sorted(servers.items()))
                lines.append(
                    f"{len(servers)} server{'s' if len(servers) != 1 else ''} {what} "
                    f"with their PACS units stopped: {names}"
                )
        return lines

    def counts(self) -> dict[str, int]:
        """Servers per status."""
        out: dict[str, int] = {}
        for result in self.servers.values():
            out[str(result.status)] = out.get(str(result.status), 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-able data (what ``pacs-tui power --json`` prints last)."""
        return {
            "kind": "result",
            "batch": self.batch,
            "verb": self.verb,
            "ok": self.ok,
            "aborted": self.aborted,
            "halted": self.halted,
            "interrupted": self.interrupted,
            "elapsed_s": round(self.elapsed_s, 3),
            "critical_path_s": round(self.critical_path_s, 3),
            "counts": self.counts(),
            "units_stopped_on": {n: list(u) for n, u in self.units_stopped_on.items()},
            "units_stopped_unknown": {n: list(u) for n, u in self.units_stopped_unknown.items()},
            "servers": [r.to_json() for r in self.servers.values()],
            "budget_peaks": self.budget_peaks,
        }


def highest_read(peak: Mapping[str, float | None]) -> str:
    """A budget's ``measured_peak_w`` for people: ``"4701 W"``, or ``"not read"`` when None."""
    watts = peak.get("measured_peak_w")
    return "not read" if watts is None else f"{watts:.0f} W"
