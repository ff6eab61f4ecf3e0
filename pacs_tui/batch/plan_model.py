"""What a power batch plan is: verbs, steps, each server's plan, waves, options.

Pure data (the dry run prints it, ``to_json`` is what ``--dry-run --json``
and the service's API give): ``plan`` builds it from a selection, and
``staggering`` splits power-on waves within the racks' power budgets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pacs_tui.batch.gates import GatePolicy
from pacs_tui.batch.power_budget import BudgetGroup, PowerBudget
from pacs_tui.inventory import Server
from pacs_tui.plugin_api import ActionStep
from pacs_tui.power import PowerState

OFF, ON, RESTART, FORCE_OFF = "off", "on", "restart", "force-off"
VERBS = (OFF, ON, RESTART, FORCE_OFF)
POWERING_OFF_VERBS = (OFF, FORCE_OFF)
# Each verb's final PowerState: a server already there is skipped.
TARGET_STATE = {OFF: PowerState.OFF, FORCE_OFF: PowerState.OFF, ON: PowerState.ON}

REDFISH_ACTION = "redfish-reset"
SSH_ACTION = "ssh-control"


class StepKind(StrEnum):
    """What the runner does for a planned step."""

    CALL = "call"  # one action call (a POST, an SSH command)
    WAIT = "wait"  # re-read PowerState until it is the wanted one
    GATE = "gate"  # poll the health checks until they all pass
    SETTLE = "settle"  # read the draw until it is back at the expected steady draw


class WaitFor(StrEnum):
    """The condition a WAIT step polls for."""

    OFF = "Off"
    ON = "On"
    DOWN = "down"  # left On: PowerState not On, or SSH stopped answering (a reboot)


@dataclass(frozen=True)
class PlannedStep:
    """One step of one server's plan, as the dry run shows and the runner runs it."""

    kind: StepKind
    call: str  # what is sent or polled, for people and the audit log
    target: str  # what the step achieves
    action_step: ActionStep | None = None  # CALL steps
    wait_for: WaitFor | None = None  # WAIT steps
    timeout_s: float = 0.0  # WAIT and GATE steps
    checks: tuple[str, ...] = ()  # GATE steps
    optional: bool = False  # a failure is recorded but does not fail the server
    escalation: bool = False  # runs only after a WAIT that timed out with escalate=True
    escalate_on_timeout: bool = False  # WAIT: a timeout leads to the escalation steps
    only_if_off: bool = False  # CALL: runs only if PowerState reads Off right before
    settle_w: float = 0.0  # SETTLE: the draw (W) at or below which the server has settled

    def to_json(self) -> dict[str, Any]:
        """The step as JSON-able data."""
        data: dict[str, Any] = {"kind": str(self.kind), "call": self.call, "target": self.target}
        if self.action_step is not None:
            data["action"] = self.action_step.action
            data["verb"] = self.action_step.verb
        if self.wait_for is not None:
            data["wait_for"] = str(self.wait_for)
        if self.timeout_s:
            data["timeout_s"] = self.timeout_s
        if self.checks:
            data["checks"] = list(self.checks)
        if self.settle_w:
            data["settle_w"] = round(self.settle_w)
        for flag in ("optional", "escalation", "escalate_on_timeout", "only_if_off"):
            if getattr(self, flag):
                data[flag] = True
        return data


@dataclass(frozen=True)
class ServerPlan:
    """What happens to one server; no steps when it is skipped."""

    server: Server
    power_state: str  # as read when the plan was made
    steps: tuple[PlannedStep, ...] = ()
    skip_reason: str = ""
    note: str = ""  # e.g. "already On: gate only"
    left_out: bool = False  # skipped although not at the target (e.g. state unknown)
    group: int = 0  # power-budget group within its wave (1-based); 0: no budget applies

    @property
    def skipped(self) -> bool:
        """True when nothing at all happens to this server (not even a gate)."""
        return bool(self.skip_reason)

    @property
    def sends(self) -> bool:
        """True when a step sends a command (a reset, an SSH command)."""
        return any(s.kind is StepKind.CALL for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        """The server's plan as JSON-able data."""
        data: dict[str, Any] = {"server": self.server.name, "power_state": self.power_state}
        if self.group:
            data["group"] = self.group
        if self.note:
            data["note"] = self.note
        if self.left_out:
            data["left_out"] = self.skip_reason
        elif self.skipped:
            data["skipped"] = self.skip_reason
        else:
            data["steps"] = [s.to_json() for s in self.steps]
        return data


@dataclass(frozen=True)
class WavePlan:
    """Servers that run together; the next wave waits until all of them are done."""

    index: int  # 1-based
    servers: tuple[ServerPlan, ...]
    # Power-on groups within the wave (power budgets); empty: all servers at once.
    groups: tuple[BudgetGroup, ...] = ()


@dataclass(frozen=True)
class PlanOptions:
    """How a plan is built: escalation, override, timeouts, gates."""

    escalate_after_s: float | None = None  # None: never ForceOff on its own
    override_dependents: bool = False
    power_timeout_s: float = 300.0  # waiting for PowerState after a reset
    gate: GatePolicy = field(default_factory=GatePolicy)
    stop_units: bool = True  # stop the PACS units over SSH before an OS shutdown
    # Each server's steady draw measured by a baseline (W): with racks' budgets, the
    # basis of its expected boot peak (``power_budget``).
    baseline_w: Mapping[str, float] = field(default_factory=dict)
    baseline_given: bool = False  # a baseline was given, even one with no draw at all
    settle_timeout_s: float = 300.0  # how long a power-on may take to settle its draw
    settle_poll_s: float = 5.0  # between draw reads while settling (each read is a few GETs)
    # Servers whose PowerState is unknown (unreadable, null, a vendor word) that
    # the operator chose to act on anyway ("*": all of them); audited.
    include_unknown: frozenset[str] = frozenset()

    def includes_unknown(self, name: str) -> bool:
        """Whether the operator included ``name`` despite its unknown PowerState."""
        return name in self.include_unknown or "*" in self.include_unknown

    def __post_init__(self) -> None:
        if self.escalate_after_s is not None and self.escalate_after_s <= 0:
            raise ValueError("escalate_after_s must be > 0")
        if self.power_timeout_s <= 0:
            raise ValueError("power_timeout_s must be > 0")
        if self.settle_timeout_s <= 0 or self.settle_poll_s <= 0:
            raise ValueError("settle_timeout_s and settle_poll_s must be > 0")


@dataclass(frozen=True)
class BatchPlan:
    """Waves of server plans for one verb, or the reasons it is refused."""

    verb: str
    waves: tuple[WavePlan, ...]
    options: PlanOptions
    selection: str = ""  # the selector expression or "marked servers", for the audit log
    refusals: tuple[str, ...] = ()  # non-empty: the plan must not run
    overridden: tuple[str, ...] = ()  # dependents the operator chose to ignore
    hints: tuple[str, ...] = ()  # what the operator can do about the refusals, one per kind
    included_unknown: tuple[str, ...] = ()  # acted on although their state is unknown
    budget: PowerBudget | None = None  # racks' power budgets this plan respects

    @property
    def refused(self) -> bool:
        """True when the plan must not run."""
        return bool(self.refusals)

    @property
    def servers(self) -> list[ServerPlan]:
        """Every server plan, wave by wave."""
        return [sp for wave in self.waves for sp in wave.servers]

    @property
    def touched(self) -> list[ServerPlan]:
        """The server plans that send a command (what confirmation counts)."""
        return [sp for sp in self.servers if sp.sends]

    def summary(self) -> str:
        """One line: verb, counts, waves."""
        skipped = sum(1 for sp in self.servers if not sp.sends and not sp.left_out)
        text = (
            f"{self.verb}: {len(self.touched)} server(s) in {len(self.waves)} wave(s)"
            f"{f', {skipped} skipped' if skipped else ''}"
        )
        if self.options.escalate_after_s is not None:
            text += f", ForceOff after {self.options.escalate_after_s:g} s"
        if self.overridden:
            text += f", dependents overridden: {len(self.overridden)}"
        left_out = sum(1 for sp in self.servers if sp.left_out)
        if left_out:
            text += f", {left_out} left out (state unknown)"
        if self.included_unknown:
            text += f", {len(self.included_unknown)} included despite unknown state"
        groups = sum(len(w.groups) for w in self.waves)
        if groups > len([w for w in self.waves if w.groups]):
            text += f", staggered into {groups} power group(s) by rack budgets"
        return text

    def to_json(self) -> dict[str, Any]:
        """The whole plan as JSON-able data (what ``--dry-run --json`` prints)."""
        return {
            "verb": self.verb,
            "selection": self.selection,
            "refusals": list(self.refusals),
            "hints": list(self.hints),
            "overridden": list(self.overridden),
            "included_unknown": list(self.included_unknown),
            "escalate_after_s": self.options.escalate_after_s,
            "waves": [_wave_json(w) for w in self.waves],
            "budgets_w": None if self.budget is None else dict(self.budget.budgets),
            **({} if self.budget is None else _budget_json(self.budget)),
        }


def _budget_json(budget: PowerBudget) -> dict[str, Any]:
    """What the budgets were planned with: the load now and every figure not read."""
    return {
        "present_load_w": {
            key: round(budget.present_w.get(key, 0.0), 1) for key in sorted(budget.budgets)
        },
        "assumed_w": _rounded(budget.assumed_w),
        "off_unread": sorted(budget.off_unread),
        "at_peak_w": _rounded(budget.at_peak_w),
    }


def _rounded(watts: Mapping[str, float]) -> dict[str, float]:
    return {name: round(w, 1) for name, w in sorted(watts.items())}


def _wave_json(wave: WavePlan) -> dict[str, Any]:
    data: dict[str, Any] = {"wave": wave.index, "servers": [sp.to_json() for sp in wave.servers]}
    if wave.groups:
        data["groups"] = [g.to_json() for g in wave.groups]
    return data


class PlanError(ValueError):
    """A plan that cannot be built at all (unknown verb, missing action plugin)."""
