"""From a selection and a verb to a ``BatchPlan``: waves, and every server's exact steps.

Waves follow ``depends_on``: ``off`` and ``force-off`` take dependents down
first, ``on`` and ``restart`` bring dependencies up first. Each server gets
the calls its verb needs on *its* BMC (the ResetTypes the BMC allows), with a
wait that re-reads PowerState after every reset. Building a plan does no
I/O: it takes the power facts read beforehand (``readings.power_facts``).

Steps per verb:

- ``off``: SSH ``systemctl stop`` of the server's units (best effort) →
  Redfish ``GracefulShutdown`` (or SSH ``shutdown -h now`` when the BMC lacks
  it) → wait PowerState Off → with ``escalate_after_s``, ``ForceOff`` and wait
  again if the OS ignored the shutdown.
- ``on``: Redfish ``On`` → wait PowerState On → health gate.
- ``restart``: stop units → ``GracefulRestart`` if allowed (else
  ``GracefulShutdown``) → wait until the server went down → (escalation:
  ``ForceRestart``/``ForceOff``) → ``On`` if it is Off → wait On → gate.
- ``force-off``: ``ForceOff`` → wait Off.

A plan that would power off a server whose unselected dependents are still
on (or in an unknown state) is refused with the reasons, unless
``override_dependents`` is set; then the overrides are listed (and audited).
Servers already at the target are skipped, never re-sent; in an ``on``
batch an already-On server still has to pass its gate before the next wave.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from pacs_tui.batch.gates import GatePolicy
from pacs_tui.batch.power_budget import (
    DEFAULT_SETTLE_TOLERANCE,
    HINT_NO_DRAW,
    HINT_OVER_BUDGET,
    HINT_RESTART,
    BudgetGroup,
    ExpectedDraw,
    PowerBudget,
    budget_keys,
    expected_draw,
    pack_wave,
    present_load,
    wave_steady,
)
from pacs_tui.batch.readings import PowerFacts
from pacs_tui.inventory import Inventory, Server
from pacs_tui.plugin_api import Action, ActionStep
from pacs_tui.power import PowerState, ResetType

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
        }


def _wave_json(wave: WavePlan) -> dict[str, Any]:
    data: dict[str, Any] = {"wave": wave.index, "servers": [sp.to_json() for sp in wave.servers]}
    if wave.groups:
        data["groups"] = [g.to_json() for g in wave.groups]
    return data


class PlanError(ValueError):
    """A plan that cannot be built at all (unknown verb, missing action plugin)."""


def build_plan(
    inventory: Inventory,
    selected: Iterable[Server | str],
    verb: str,
    facts: Mapping[str, PowerFacts],
    actions: Mapping[str, Action],
    options: PlanOptions | None = None,
    *,
    selection: str = "",
    draw_now: Mapping[str, float | None] | None = None,
) -> BatchPlan:
    """Plan ``verb`` on ``selected``; ``facts`` must cover them and their dependents.

    ``draw_now``: each server's draw (W) as read when planning, for the racks'
    power budgets of an ``on`` plan (``power_budget``); None: none was read.
    """
    if verb not in VERBS:
        raise PlanError(f"unknown verb {verb!r} (known: {', '.join(VERBS)})")
    if REDFISH_ACTION not in actions:
        raise PlanError(f"the {REDFISH_ACTION!r} action plugin is not loaded")
    opts = options or PlanOptions()
    servers = [inventory.server(s) if isinstance(s, str) else s for s in selected]
    names = {s.name for s in servers}
    refusals: list[str] = []
    hints: dict[str, None] = {}
    overridden: list[str] = []
    if verb in POWERING_OFF_VERBS:
        for reason in _unselected_dependents(inventory, servers, names, facts):
            (overridden if opts.override_dependents else refusals).append(reason)
            if not opts.override_dependents:
                hints[HINT_DEPENDENTS] = None
    waves = (
        inventory.shutdown_waves(servers)
        if verb in POWERING_OFF_VERBS
        else inventory.startup_waves(servers)
    )
    planner = _ServerPlanner(verb, actions, opts)
    planned: list[WavePlan] = []
    included: list[str] = []
    for index, wave in enumerate(waves, start=1):
        plans = []
        for server in wave:
            power = facts.get(server.name, PowerFacts())
            sp = planner.plan(server, power)
            if isinstance(sp, Refusal):
                refusals.append(sp.reason)
                hints[sp.hint] = None
                sp = ServerPlan(server, power.state)
            elif sp.sends and power.state not in KNOWN_STATES:
                included.append(f"{server.name}: PowerState {power.state} ({power.detail})")
            plans.append(sp)
        planned.append(WavePlan(index, tuple(plans)))
    planned = _protect_around_left_out(verb, planned)
    budget = None
    if verb == ON and inventory.racks:
        planned, budget = _stagger(inventory, planned, opts, draw_now or {}, refusals, hints)
    elif verb == RESTART and inventory.racks:
        _check_restart(inventory, planned, opts, draw_now or {}, refusals, hints)
    return BatchPlan(
        verb,
        tuple(planned),
        opts,
        selection,
        tuple(refusals),
        tuple(overridden),
        tuple(hints),
        tuple(included),
        budget,
    )


def _stagger(
    inventory: Inventory,
    waves: list[WavePlan],
    opts: PlanOptions,
    draw_now: Mapping[str, float | None],
    refusals: list[str],
    hints: dict[str, None],
) -> tuple[list[WavePlan], PowerBudget | None]:
    """Split each wave's power-ons into groups within the racks' budgets (``power_budget``)."""
    booting = [sp.server.name for wave in waves for sp in wave.servers if sp.sends]
    keys = {name: budget_keys(inventory, inventory.server(name)) for name in booting}
    budgeted = [name for name in booting if keys[name]]
    if not budgeted:
        return waves, None
    expected: dict[str, ExpectedDraw] = {}
    for name in budgeted:
        draw = expected_draw(inventory.server(name), opts.baseline_w.get(name))
        if not draw.known:
            source = draw.source
            if opts.baseline_w and name not in opts.baseline_w:
                source = "the baseline given has no draw for it, and it has no nameplate_w"
            refusals.append(f"{name}: rack {inventory.server(name).rack} has a power budget, "
                            f"but its expected draw is unknown ({source})")  # fmt: skip
            hints[HINT_NO_DRAW] = None
            continue
        expected[name] = draw
    present, unknown = present_load(inventory, booting, draw_now, opts.baseline_w)
    if unknown:
        refusals.extend(unknown)
        hints[HINT_NO_DRAW] = None
    if len(expected) < len(budgeted) or unknown:
        return waves, None
    prior = dict(present)
    budgets: dict[str, float] = {}
    for name in budgeted:
        budgets.update(keys[name])
    out: list[WavePlan] = []
    for wave in waves:
        names = [sp.server.name for sp in wave.servers if sp.sends]
        packing = pack_wave(names, keys, expected, prior)
        if packing.refusals:
            refusals.extend(packing.refusals)
            hints[HINT_OVER_BUDGET] = None
        for key, watts in wave_steady(names, keys, expected).items():
            prior[key] = prior.get(key, 0.0) + watts
        group_of = {n: i + 1 for i, group in enumerate(packing.groups) for n in group}
        servers = tuple(
            _with_settle(sp, group_of.get(sp.server.name, 1), opts, expected)
            if sp.sends
            else sp  # boots nothing: in no group (group 0), holds no one
            for sp in wave.servers
        )
        groups = tuple(
            BudgetGroup(i + 1, tuple(group), packing.peaks[i])
            for i, group in enumerate(packing.groups)
        )
        out.append(WavePlan(wave.index, servers, groups))
    members: dict[str, list[str]] = {}
    for server in inventory:
        for key in budget_keys(inventory, server):
            members.setdefault(key, []).append(server.name)
    budget = PowerBudget(
        budgets=budgets,
        keys={name: tuple(keys[name]) for name in budgeted},
        members={key: tuple(names) for key, names in members.items()},
        expected=expected,
        present_w=present,
        draw_now={n: w for n, w in draw_now.items() if w is not None},
    )
    return out, budget


def _check_restart(
    inventory: Inventory,
    waves: list[WavePlan],
    opts: PlanOptions,
    draw_now: Mapping[str, float | None],
    refusals: list[str],
    hints: dict[str, None],
) -> None:
    """Refuse a restart whose waves would boot a rack past its budget (not staggered).

    While a wave reboots, the rack draws its other servers' present load, the
    steady draw of every other restarted server, and this wave's boot peaks.
    """
    restarting = [sp.server.name for wave in waves for sp in wave.servers if sp.sends]
    keys = {name: budget_keys(inventory, inventory.server(name)) for name in restarting}
    budgeted = [name for name in restarting if keys[name]]
    if not budgeted:
        return
    expected = {n: expected_draw(inventory.server(n), opts.baseline_w.get(n)) for n in budgeted}
    unknown = [n for n in budgeted if not expected[n].known]
    present, unread = present_load(inventory, restarting, draw_now, opts.baseline_w)
    for name in unknown:
        refusals.append(f"{name}: rack {inventory.server(name).rack} has a power budget, "
                        f"but its expected draw is unknown ({expected[name].source})")  # fmt: skip
    refusals.extend(unread)
    if unknown or unread:
        hints[HINT_NO_DRAW] = None
        return
    steady_all = wave_steady(budgeted, keys, expected)
    budgets = {k: w for n in budgeted for k, w in keys[n].items()}
    for wave in waves:
        names = [sp.server.name for sp in wave.servers if sp.sends and sp.server.name in expected]
        peaks: dict[str, float] = {}
        for name in names:
            for key in keys[name]:
                peaks[key] = peaks.get(key, 0.0) + (expected[name].peak_w or 0.0)
        own = wave_steady(names, keys, expected)
        for key, peak in sorted(peaks.items()):
            load = present.get(key, 0.0) + steady_all.get(key, 0.0) - own.get(key, 0.0) + peak
            if load > budgets[key]:
                refusals.append(
                    f"restart wave {wave.index}: {len(names)} server(s) rebooting at once would "
                    f"take {key} to {load:.0f} W, over its budget {budgets[key]:.0f} W "
                    "(a restart is not staggered)"
                )
                hints[HINT_RESTART] = None


def _with_settle(
    sp: ServerPlan, group: int, opts: PlanOptions, expected: Mapping[str, ExpectedDraw]
) -> ServerPlan:
    """``sp`` in ``group``, with a SETTLE step after its power-on when it has a budget."""
    draw = expected.get(sp.server.name)
    if draw is None or draw.steady_w is None:
        return replace(sp, group=group)
    below = draw.steady_w * (1 + DEFAULT_SETTLE_TOLERANCE)
    settle = PlannedStep(
        StepKind.SETTLE,
        f"read draw every {opts.settle_poll_s:g} s until ≤ {below:.0f} W twice (peak expected "
        f"{draw.peak_w:.0f} W, {draw.source}; ≤ {opts.settle_timeout_s:g} s)",
        "draw settled",
        timeout_s=opts.settle_timeout_s,
        settle_w=below,
    )
    steps = list(sp.steps)
    at = next(
        (
            i + 1
            for i, s in enumerate(steps)
            if s.kind is StepKind.WAIT and s.wait_for is WaitFor.ON
        ),
        len(steps),
    )
    steps.insert(at, settle)
    return replace(sp, steps=tuple(steps), group=group)


def downstream_map(verb: str, servers: Iterable[Server]) -> dict[str, set[str]]:
    """For each server, the servers among ``servers`` that must not run if it does not.

    Power-on: everything that depends on it (transitively). Power-off:
    everything it depends on (it may still be on, so they must stay on too).
    """
    chosen = list(servers)
    names = {s.name for s in chosen}
    edges: dict[str, set[str]] = {n: set() for n in names}
    for server in chosen:
        for dep in server.depends_on:
            if dep not in names:
                continue
            if verb in POWERING_OFF_VERBS:
                edges[server.name].add(dep)
            else:
                edges[dep].add(server.name)
    out: dict[str, set[str]] = {}
    for start in names:
        seen: set[str] = set()
        stack = list(edges[start])
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(edges[node])
        out[start] = seen
    return out


def _protect_around_left_out(verb: str, waves: list[WavePlan]) -> list[WavePlan]:
    """Leave out what a left-out server needs (off) or what needs it (on).

    A server left out for its unknown state may be running: powering off what
    it depends on, or starting what depends on it, would act under it.
    """
    plans = [sp for wave in waves for sp in wave.servers]
    left = {sp.server.name for sp in plans if sp.left_out}
    if not left:
        return waves
    downstream = downstream_map(verb, [sp.server for sp in plans])
    why: dict[str, str] = {}
    for name in sorted(left):
        for other in sorted(downstream[name]):
            if other not in left:
                relation = "depends on it" if verb in POWERING_OFF_VERBS else "it needs"
                why.setdefault(other, f"left out: {name} ({relation}) is left out, state unknown")
    out = []
    for wave in waves:
        servers = tuple(
            replace(sp, steps=(), skip_reason=why[sp.server.name], left_out=True, note="")
            if sp.server.name in why and sp.sends
            else sp
            for sp in wave.servers
        )
        out.append(WavePlan(wave.index, servers))
    return out


def _unselected_dependents(
    inventory: Inventory,
    servers: list[Server],
    names: set[str],
    facts: Mapping[str, PowerFacts],
) -> list[str]:
    """Reasons: a selected server would go off under an unselected dependent still on."""
    reasons = []
    for server in servers:
        for dependent in inventory.dependents(server.name):
            if dependent.name in names:
                continue
            state = facts.get(dependent.name, PowerFacts()).state
            if state == PowerState.OFF:
                continue
            words = "is still On" if state == PowerState.ON else f"is {state} (not known Off)"
            reasons.append(f"{server.name}: dependent {dependent.name} is not selected and {words}")
    return reasons


# PowerStates a plan may act on; anything else (unreadable, null, a vendor word)
# is left out unless the operator includes the server explicitly.
KNOWN_STATES = frozenset(
    str(s)
    for s in (
        PowerState.ON,
        PowerState.OFF,
        PowerState.POWERING_ON,
        PowerState.POWERING_OFF,
        PowerState.PAUSED,
    )
)

HINT_DEPENDENTS = "select the dependents too, or --override-dependents"
HINT_NO_BMC = "give the server a bmc block in the inventory"
HINT_NO_GRACEFUL = "use force-off, or give the server an ssh block so it can shut down"
HINT_NO_ESCALATION = "run without --escalate-after (its BMC cannot force it off)"
HINT_BMC_CANNOT = "its BMC does not offer this ResetType: power it by hand"
HINT_SYSTEM = "name the server's ComputerSystem with bmc.system in the inventory"


@dataclass(frozen=True)
class Refusal:
    """Why one server's plan cannot be made, and what the operator can do."""

    reason: str
    hint: str


class _ServerPlanner:
    """Builds one server's steps for one verb."""

    def __init__(self, verb: str, actions: Mapping[str, Action], options: PlanOptions) -> None:
        self.verb = verb
        self.redfish = actions[REDFISH_ACTION]
        self.ssh = actions.get(SSH_ACTION)
        self.options = options

    def plan(self, server: Server, facts: PowerFacts) -> ServerPlan | Refusal:
        """The server's plan, or a refusal with its hint."""
        if server.bmc is None:
            return Refusal(
                f"{server.name}: has no BMC, so its PowerState cannot be verified", HINT_NO_BMC
            )
        if facts.facts.get("system_unknown"):
            # Several systems behind one BMC and none named: a reset could hit another server.
            return Refusal(f"{server.name}: {facts.detail}", HINT_SYSTEM)
        if facts.state not in KNOWN_STATES and not self.options.includes_unknown(server.name):
            raw = facts.facts.get("power_state_raw")
            if raw is not None:
                # The BMC answered, with a word that is no Redfish power state.
                why = (
                    f"state unknown (the BMC reports PowerState {raw}); left out — "
                    "include it explicitly (--include-unknown) to act on it"
                )
            else:
                # Unreadable: acting blindly would not help, fixing the access would.
                why = (
                    f"state unknown (BMC not readable: {facts.detail or 'not read'}); "
                    "left out — fix the BMC's access first"
                )
            return ServerPlan(server, facts.state, skip_reason=why, left_out=True)
        target = TARGET_STATE.get(self.verb)
        if self.verb == ON and facts.state == PowerState.ON:
            # Nothing to send, but its dependents must still wait for it to be healthy.
            gate = (self._gate(server),)
            return ServerPlan(server, facts.state, gate, note="already On: no reset, gate only")
        if target is not None and facts.state == target:
            return ServerPlan(server, facts.state, skip_reason=f"already {facts.state}")
        if self.verb == RESTART and facts.state == PowerState.OFF:
            return ServerPlan(server, facts.state, skip_reason="is Off (use 'on')")
        build = {OFF: self._off, ON: self._on, RESTART: self._restart, FORCE_OFF: self._force_off}
        steps = build[self.verb](server, facts)
        if isinstance(steps, Refusal):
            return steps
        return ServerPlan(server, facts.state, tuple(steps))

    # -- building blocks ------------------------------------------------------------

    def _reset(
        self, server: Server, facts: PowerFacts, reset_type: str, **flags: Any
    ) -> PlannedStep:
        step = self.redfish.steps(server, reset_type, facts.facts)[0]
        return PlannedStep(StepKind.CALL, step.call, step.target, action_step=step, **flags)

    def _ssh(self, server: Server, verb: str, **flags: Any) -> PlannedStep | None:
        if self.ssh is None or not self.ssh.applies_to(server, verb):
            return None
        step = self.ssh.steps(server, verb)[0]
        return PlannedStep(StepKind.CALL, step.call, step.target, action_step=step, **flags)

    def _wait(
        self, server: Server, facts: PowerFacts, wait_for: WaitFor, timeout_s: float, **flags: Any
    ) -> PlannedStep:
        assert server.bmc is not None
        system = facts.facts.get("system_path") or "/redfish/v1/Systems/<discovered>"
        what = "PowerState≠On or SSH down" if wait_for is WaitFor.DOWN else f"PowerState={wait_for}"
        return PlannedStep(
            StepKind.WAIT,
            f"GET {server.bmc.url}{system} until {what} (≤ {timeout_s:g} s)",
            what,
            wait_for=wait_for,
            timeout_s=timeout_s,
            **flags,
        )

    def _gate(self, server: Server) -> PlannedStep:
        checks = self.options.gate.checks_for(server)
        return PlannedStep(
            StepKind.GATE,
            f"gate {'+'.join(checks) or '(none)'} (≤ {self.options.gate.timeout_s:g} s)",
            "healthy: " + (", ".join(checks) or "no checks"),
            timeout_s=self.options.gate.timeout_s,
            checks=checks,
        )

    def _stop_units(self, server: Server) -> list[PlannedStep]:
        if not self.options.stop_units:
            return []
        step = self._ssh(server, "stop-units", optional=True)
        return [step] if step is not None else []

    def _first_wait_s(self) -> tuple[float, bool]:
        """How long to wait for a graceful result, and whether escalation follows."""
        escalate = self.options.escalate_after_s
        if escalate is None:
            return self.options.power_timeout_s, False
        return escalate, True

    # -- verbs ------------------------------------------------------------------------

    def _off(self, server: Server, facts: PowerFacts) -> list[PlannedStep] | Refusal:
        steps = self._stop_units(server)
        if facts.allows(ResetType.GRACEFUL_SHUTDOWN):
            steps.append(self._reset(server, facts, ResetType.GRACEFUL_SHUTDOWN))
        else:
            ssh = self._ssh(server, "shutdown")
            if ssh is None:
                return Refusal(
                    f"{server.name}: its BMC lacks GracefulShutdown and it has no SSH: "
                    "no graceful way down",
                    HINT_NO_GRACEFUL,
                )
            steps.append(ssh)
        first_wait, escalate = self._first_wait_s()
        steps.append(
            self._wait(server, facts, WaitFor.OFF, first_wait, escalate_on_timeout=escalate)
        )
        if escalate:
            if not facts.allows(ResetType.FORCE_OFF):
                return Refusal(
                    f"{server.name}: escalation asked, but its BMC lacks ForceOff",
                    HINT_NO_ESCALATION,
                )
            steps.append(self._reset(server, facts, ResetType.FORCE_OFF, escalation=True))
            steps.append(
                self._wait(
                    server, facts, WaitFor.OFF, self.options.power_timeout_s, escalation=True
                )
            )
        return steps

    def _force_off(self, server: Server, facts: PowerFacts) -> list[PlannedStep] | Refusal:
        if not facts.allows(ResetType.FORCE_OFF):
            return Refusal(f"{server.name}: its BMC does not allow ForceOff", HINT_BMC_CANNOT)
        return [
            self._reset(server, facts, ResetType.FORCE_OFF),
            self._wait(server, facts, WaitFor.OFF, self.options.power_timeout_s),
        ]

    def _on(self, server: Server, facts: PowerFacts) -> list[PlannedStep] | Refusal:
        if not facts.allows(ResetType.ON):
            return Refusal(f"{server.name}: its BMC does not allow On", HINT_BMC_CANNOT)
        return [
            self._reset(server, facts, ResetType.ON),
            self._wait(server, facts, WaitFor.ON, self.options.power_timeout_s),
            self._gate(server),
        ]

    def _restart(self, server: Server, facts: PowerFacts) -> list[PlannedStep] | Refusal:
        steps = self._stop_units(server)
        first_wait, escalate = self._first_wait_s()
        if facts.allows(ResetType.GRACEFUL_RESTART):
            steps.append(self._reset(server, facts, ResetType.GRACEFUL_RESTART))
            steps.append(
                self._wait(server, facts, WaitFor.DOWN, first_wait, escalate_on_timeout=escalate)
            )
            force = (
                ResetType.FORCE_RESTART
                if facts.allows(ResetType.FORCE_RESTART)
                else ResetType.FORCE_OFF
            )
        elif facts.allows(ResetType.GRACEFUL_SHUTDOWN):
            steps.append(self._reset(server, facts, ResetType.GRACEFUL_SHUTDOWN))
            steps.append(
                self._wait(server, facts, WaitFor.OFF, first_wait, escalate_on_timeout=escalate)
            )
            force = ResetType.FORCE_OFF
        else:
            return Refusal(
                f"{server.name}: its BMC allows neither GracefulRestart nor GracefulShutdown",
                HINT_NO_GRACEFUL,
            )
        if escalate:
            if not facts.allows(force):
                return Refusal(
                    f"{server.name}: escalation asked, but its BMC lacks {force}",
                    HINT_NO_ESCALATION,
                )
            steps.append(self._reset(server, facts, force, escalation=True))
            steps.append(
                self._wait(
                    server, facts, WaitFor.DOWN, self.options.power_timeout_s, escalation=True
                )
            )
        if not facts.allows(ResetType.ON):
            return Refusal(f"{server.name}: its BMC does not allow On", HINT_BMC_CANNOT)
        steps.append(self._reset(server, facts, ResetType.ON, only_if_off=True))
        steps.append(self._wait(server, facts, WaitFor.ON, self.options.power_timeout_s))
        steps.append(self._gate(server))
        return steps
