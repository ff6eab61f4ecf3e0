"""From a selection and a verb to a ``BatchPlan``: waves, and every server's exact steps.

Waves follow ``depends_on``: ``off`` and ``force-off`` take dependents down
first, ``on`` and ``restart`` bring dependencies up first. Each server gets
the calls its verb needs on *its* BMC (the ResetTypes the BMC allows), with a
wait that re-reads PowerState after every reset. Building a plan does no
I/O: it takes the power facts read beforehand (``readings.power_facts``).
The plan's data types are in ``plan_model``; racks' power budgets are
applied by ``staggering``.

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
from dataclasses import dataclass, replace
from typing import Any

from pacs_tui.batch.plan_model import (
    FORCE_OFF,
    OFF,
    ON,
    POWERING_OFF_VERBS,
    REDFISH_ACTION,
    RESTART,
    SSH_ACTION,
    TARGET_STATE,
    VERBS,
    BatchPlan,
    PlanError,
    PlannedStep,
    PlanOptions,
    ServerPlan,
    StepKind,
    WaitFor,
    WavePlan,
)
from pacs_tui.batch.readings import PowerFacts
from pacs_tui.batch.staggering import check_restart, stagger
from pacs_tui.inventory import Inventory, Server
from pacs_tui.plugin_api import Action
from pacs_tui.power import PowerState, ResetType

# The plan's model lives in ``plan_model``; importable from here as it always was.
__all__ = [
    "FORCE_OFF",
    "KNOWN_STATES",
    "OFF",
    "ON",
    "POWERING_OFF_VERBS",
    "REDFISH_ACTION",
    "RESTART",
    "SSH_ACTION",
    "TARGET_STATE",
    "VERBS",
    "BatchPlan",
    "PlanError",
    "PlanOptions",
    "PlannedStep",
    "ServerPlan",
    "StepKind",
    "WaitFor",
    "WavePlan",
    "build_plan",
    "downstream_map",
]


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
    ``facts`` may also cover the racks' other servers: one read Off whose draw
    is unreadable then counts 0 W in its rack's present load.
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
    # Read Off now: a rack neighbour without a readable draw counts 0 W (power_budget).
    off = {name for name, power in facts.items() if power.state == PowerState.OFF}
    if verb == ON and inventory.racks:
        planned, budget = stagger(inventory, planned, opts, draw_now or {}, refusals, hints, off)
    elif verb == RESTART and inventory.racks:
        check_restart(inventory, planned, opts, draw_now or {}, refusals, hints, off)
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
