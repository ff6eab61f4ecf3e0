"""A control session over one inventory: where read-only is enforced.

Read-only is a property of the engine, not of the key bindings. A session is
read-only when it was opened so (``--read-only``, the wall display) or when
the inventory says ``read_only: true``; such a session refuses to load
action plugins and to build a batch runner, raising ``ReadOnlySession``
with the reason. The control room, the wall and the CLI all go through it.

A writable session plans batches (reading power facts through the fleet's
poller and auditing every plan) and builds runners::

    async with Session(inventory) as session:
        plan = await session.plan(servers, "off", readings, PlanOptions())
        runner = session.runner(plan, readings, confirmation=...)
        result = await runner.run()
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any

from pacs_tui.batch.audit import AuditLog
from pacs_tui.batch.confirm import Confirmation, ConfirmationRule
from pacs_tui.batch.plan import ON, RESTART, BatchPlan, PlanOptions, build_plan
from pacs_tui.batch.readings import Readings, power_facts
from pacs_tui.batch.runner import BatchRunner, FailurePolicy, RetryPolicy
from pacs_tui.batch.settle import RACK_POWER_PROBE, rack_draws
from pacs_tui.inventory import Inventory, Server
from pacs_tui.plugin_api import Action, ProbeContext
from pacs_tui.plugin_catalog import LoadedPlugins, load_actions

# settings key: server -> draw (W) from a baseline, for racks' power budgets (``power_budget``)
POWER_BASELINE_SETTING = "power_baseline_w"


class ReadOnlySession(PermissionError):
    """A read-only session was asked for something that can change the fleet."""


def new_batch_id() -> str:
    """A short random id that ties a batch's audit rows together."""
    return secrets.token_hex(6)


class Session:
    """One operator's session over one inventory."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        read_only: bool = False,
        settings: Mapping[str, Any] | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        """``read_only`` adds to the inventory's own flag; it can never lift it."""
        self.inventory = inventory
        self._read_only_flag = read_only
        self.settings = dict(settings or {})
        self._audit = audit
        self._owns_audit = audit is None
        self.actions: dict[str, Action] = {}
        self.failed_actions: dict[str, str] = {}
        self._opened = False

    # -- read-only --------------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        """True when nothing may be changed through this session."""
        return self._read_only_flag or self.inventory.read_only

    @property
    def read_only_reason(self) -> str:
        """Why the session is read-only ("" when it is not)."""
        if self.inventory.read_only:
            return f"the inventory {self.inventory.path} is marked read_only"
        if self._read_only_flag:
            return "the session was opened read-only (--read-only)"
        return ""

    def require_writable(self, what: str) -> None:
        """Raise ``ReadOnlySession`` saying why ``what`` is not possible."""
        if self.read_only:
            raise ReadOnlySession(f"cannot {what}: {self.read_only_reason}")

    # -- actions and audit ----------------------------------------------------------------

    def load_actions(self, only: set[str] | None = None) -> LoadedPlugins[Action]:
        """Import the action plugins (refused in a read-only session)."""
        self.require_writable("load action plugins")
        return load_actions(only)

    @property
    def audit(self) -> AuditLog:
        """The audit log (opened on first use)."""
        if self._audit is None:
            self._audit = AuditLog()
        return self._audit

    async def open(self, actions: Sequence[Action] | None = None) -> None:
        """Load (unless given) and open the action plugins; a broken one is reported."""
        self.require_writable("open a control session")
        if actions is None:
            loaded = self.load_actions()
            self.failed_actions.update(loaded.failed)
            actions = list(loaded.plugins.values())
        context = ProbeContext(self.inventory, self.settings)
        for action in actions:
            try:
                await action.open(context)
            except Exception as exc:  # a broken plugin is reported, not fatal
                self.failed_actions[action.name] = f"open failed: {type(exc).__name__}: {exc}"
                continue
            self.actions[action.name] = action
        self._opened = True

    async def close(self) -> None:
        """Close the action plugins and the audit log."""
        actions, self.actions = self.actions, {}
        for action in actions.values():
            try:
                await action.close()
            except Exception as exc:
                self.failed_actions[action.name] = f"close failed: {type(exc).__name__}: {exc}"
        if self._owns_audit and self._audit is not None:
            self._audit.close()
            self._audit = None

    async def __aenter__(self) -> Session:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- planning and running ---------------------------------------------------------------

    async def plan(
        self,
        selected: Iterable[Server],
        verb: str,
        readings: Readings,
        options: PlanOptions | None = None,
        *,
        selection: str = "",
        batch_id: str | None = None,
        dry_run: bool = False,
        audit: AuditLog | None = None,
    ) -> tuple[BatchPlan, str]:
        """Read power facts, build the plan, audit it; return (plan, batch id).

        ``audit`` records under another operator (``AuditLog.for_operator``).
        """
        self.require_writable("plan a power batch")
        servers = list(selected)
        names = {s.name for s in servers}
        neighbours = {d.name: d for s in servers for d in self.inventory.dependents(s.name)}
        to_read = servers + [d for n, d in neighbours.items() if n not in names]
        facts = await power_facts(readings, to_read)
        draw_now = None
        draws = self.settings.get(POWER_BASELINE_SETTING)
        own = options is not None and (options.baseline_given or bool(options.baseline_w))
        if draws is not None and not own:
            # The expected draws the screen or service was started with (--power-baseline).
            options = replace(options or PlanOptions(), baseline_w=dict(draws), baseline_given=True)
        if verb in (ON, RESTART) and self.inventory.racks:
            draw_now = await rack_draws(self.inventory, servers, readings)
            # A rack neighbour whose draw is unreadable: is it off? (then it counts 0 W)
            unread = [self.inventory.server(n) for n, w in draw_now.items() if w is None]
            facts.update(await power_facts(readings, [s for s in unread if s.name not in facts]))
        plan = build_plan(
            self.inventory, servers, verb, facts, self.actions, options,
            selection=selection, draw_now=draw_now,
        )  # fmt: skip
        if plan.budget is not None and not readings.has(RACK_POWER_PROBE):
            plan = replace(
                plan,
                refusals=(*plan.refusals, "racks have power budgets, but the rack-power "
                          "probe that reads each server's draw is not loaded"),
                hints=(*plan.hints, "load the rack-power probe (pacs_tui_redfish_power)"),
            )  # fmt: skip
        batch = batch_id or new_batch_id()
        self.record_plan(plan, batch, dry_run=dry_run, audit=audit)
        return plan, batch

    def record_plan(
        self, plan: BatchPlan, batch: str, *, dry_run: bool = False, audit: AuditLog | None = None
    ) -> None:
        """Audit a plan: its waves, refusals and overrides."""
        log = audit or self.audit
        waves = [[sp.server.name for sp in w.servers] for w in plan.waves]
        outcome = "refused" if plan.refused else ("dry-run" if dry_run else "planned")
        detail = f"{plan.summary()}; selection {plan.selection or '-'}; waves {json.dumps(waves)}"
        log.record(batch, "plan", verb=plan.verb, outcome=outcome, detail=detail)
        for reason in plan.refusals:
            log.record(batch, "refused", verb=plan.verb, outcome="refused", detail=reason)
        for reason in plan.overridden:
            log.record(batch, "override", verb=plan.verb, outcome="overridden", detail=reason)
        for reason in plan.included_unknown:
            log.record(batch, "include-unknown", verb=plan.verb, outcome="included", detail=reason)
        for sp in plan.servers:
            if sp.left_out:
                log.record(
                    batch, "left-out", verb=plan.verb, server=sp.server.name,
                    outcome="left out", detail=sp.skip_reason,
                )  # fmt: skip

    def record_confirmation(
        self,
        plan: BatchPlan,
        batch: str,
        confirmation: Confirmation | None,
        accepted: bool,
        *,
        audit: AuditLog | None = None,
    ) -> None:
        """Audit a confirmation (typed, ``--yes``, or declined)."""
        how = confirmation.how if confirmation is not None else "none"
        (audit or self.audit).record(
            batch,
            "confirm",
            verb=plan.verb,
            outcome="confirmed" if accepted else "declined",
            detail=f"{how}; {len(plan.touched)} server(s)",
        )

    def runner(
        self,
        plan: BatchPlan,
        readings: Readings,
        *,
        batch_id: str,
        confirmation: Confirmation | None = None,
        confirm_rule: ConfirmationRule | None = None,
        concurrency: int = 32,
        on_failure: FailurePolicy = FailurePolicy.HALT,
        poll_s: float = 1.0,
        retry: RetryPolicy | None = None,
        audit: AuditLog | None = None,
    ) -> BatchRunner:
        """A runner for ``plan`` (refused when read-only, refused or unconfirmed)."""
        self.require_writable("build a batch runner")
        return BatchRunner(
            self,
            plan,
            self.actions,
            readings,
            audit or self.audit,
            batch_id=batch_id,
            confirmation=confirmation,
            confirm_rule=confirm_rule,
            concurrency=concurrency,
            on_failure=on_failure,
            poll_s=poll_s,
            retry=retry,
        )
