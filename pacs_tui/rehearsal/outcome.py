"""What a rehearsal found: each phase's outcome, the named problems, the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pacs_tui.rehearsal.options import RehearsalOptions


@dataclass(frozen=True)
class Detection:
    """One problem the rehearsal found, named by its kind (e.g. ``slow-storage``)."""

    fault: str
    message: str

    def __str__(self) -> str:
        return f"{self.fault}: {self.message}"


@dataclass
class PhaseOutcome:
    """One phase of the rehearsal: when, how long, and how it went."""

    name: str
    kind: str
    started_s: float  # seconds after the rehearsal started
    duration_s: float = 0.0
    ok: bool = True
    summary: str = ""
    no_service: int = 0  # hospitals/clinics without PACS service after the phase

    def to_json(self) -> dict[str, Any]:
        """The phase as JSON-able data."""
        return {
            "name": self.name,
            "kind": self.kind,
            "started_s": round(self.started_s, 2),
            "duration_s": round(self.duration_s, 2),
            "ok": self.ok,
            "summary": self.summary,
            "no_service": self.no_service,
        }


@dataclass
class RehearsalResult:
    """The outcome: every phase, every detected problem, where the report is."""

    options: RehearsalOptions
    phases: list[PhaseOutcome] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    stopped_at: str = ""  # the phase that stopped the rehearsal ("" when it ran through)
    summary_path: Path | None = None
    report_paths: tuple[Path, ...] = ()
    elapsed_s: float = 0.0
    # The preflight before power-up: servers left Off (and why), sites not proven
    # same-or-better (and why), and the preflight's lines for the report.
    held: dict[str, str] = field(default_factory=dict)
    not_proven: dict[str, str] = field(default_factory=dict)
    preflight: list[str] = field(default_factory=list)
    # Per budgeted rack at power-up: budget, expected and measured peaks (report lines).
    rack_power: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True only when every phase went well and the move is proven same-or-better."""
        return (
            not self.detections
            and not self.stopped_at
            and not self.held
            and not self.not_proven
            and all(p.ok for p in self.phases)
        )

    @property
    def faults(self) -> list[str]:
        """The kinds of problem found, without repeats, in order of detection."""
        return list(dict.fromkeys(d.fault for d in self.detections))

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-able data."""
        return {
            "ok": self.ok,
            "servers": self.options.servers,
            "planted": list(self.options.plants),
            "faults": self.faults,
            "detections": [str(d) for d in self.detections],
            "stopped_at": self.stopped_at or None,
            "held": dict(self.held),
            "not_proven": dict(self.not_proven),
            "rack_power": list(self.rack_power),
            "elapsed_s": round(self.elapsed_s, 1),
            "phases": [p.to_json() for p in self.phases],
            "summary": str(self.summary_path) if self.summary_path else None,
            "reports": [str(p) for p in self.report_paths],
        }


class RehearsalStopped(Exception):
    """A phase failed in a way that makes going on pointless or unsafe."""
