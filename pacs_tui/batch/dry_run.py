"""The dry run: every wave and every call a plan would make, and nothing else.

It only formats the plan; building the plan read PowerStates (GETs) and
sent nothing. JSON comes from ``BatchPlan.to_json``.
"""

from __future__ import annotations

from pacs_tui.batch.plan import BatchPlan, StepKind
from pacs_tui.batch.power_budget import BudgetGroup


def _group_lines(plan: BatchPlan, groups: tuple[BudgetGroup, ...]) -> list[str]:
    """One line per power group: who boots together and each budget's expected peak."""
    assert plan.budget is not None
    budgets = plan.budget.budgets
    out = []
    for group in groups:
        peaks = ", ".join(
            f"{key} {watts:.0f}/{budgets[key]:.0f} W"
            for key, watts in group.expected_peak_w.items()
        )
        after = "" if group.index == 1 else f", after group {group.index - 1} settled"
        out.append(
            f"  group {group.index}/{len(groups)} ({len(group.servers)} server(s){after}): "
            f"expected peak {peaks or '(no budget)'}"
        )
    return out


def _figure_lines(plan: BatchPlan) -> list[str]:
    """Every figure of the budgets that was not read now, each said with what stands in."""
    budget = plan.budget
    assert budget is not None
    out = []
    if budget.assumed_w:
        named = ", ".join(f"{n} {w:.0f} W" for n, w in sorted(budget.assumed_w.items()))
        out.append(
            f"  of that, not read but counted at their expected boot peak (they may be booting; "
            f"baseline × boot_peak_factor, else nameplate): {named}"
        )
    if budget.off_unread:
        out.append(
            f"  read Off, their BMC gives no draw: counted at 0 W (standby not counted): "
            f"{', '.join(sorted(budget.off_unread))}"
        )
    if budget.at_peak_w:
        named = ", ".join(f"{n} {w:.0f} W" for n, w in sorted(budget.at_peak_w.items()))
        out.append(
            f"  draw not readable now, so counted at their boot peak for good (no settle "
            f"step): {named}"
        )
    if plan.options.baseline_given:
        fallback = sorted(
            (name, draw.peak_w)
            for name, draw in budget.expected.items()
            if name not in plan.options.baseline_w and draw.peak_w is not None
        )
        if fallback:
            named = ", ".join(f"{name} {w:.0f} W" for name, w in fallback)
            out.append(
                f"  no draw in the baseline given, counted at their nameplate (steady = peak): "
                f"{named}"
            )
    return out


def dry_run_lines(plan: BatchPlan) -> list[str]:
    """The plan as text: refusals first, then wave by wave, server by server, call by call."""
    lines = [f"DRY RUN — {plan.summary()} (nothing is sent)"]
    if plan.selection:
        lines.append(f"selection: {plan.selection}")
    for reason in plan.refusals:
        lines.append(f"REFUSED: {reason}")
    for hint in plan.hints:
        lines.append(f"  hint: {hint}")
    for reason in plan.overridden:
        lines.append(f"OVERRIDDEN: {reason}")
    for reason in plan.included_unknown:
        lines.append(f"INCLUDED DESPITE UNKNOWN STATE: {reason}")
    if plan.budget is not None:
        budgets = ", ".join(f"{k} {w:.0f} W" for k, w in sorted(plan.budget.budgets.items()))
        present = ", ".join(
            f"{k} {plan.budget.present_w.get(k, 0.0):.0f} W" for k in sorted(plan.budget.budgets)
        )
        lines.append(
            f"power budgets: {budgets}; load now of the racks' servers this plan does not "
            f"power on: {present}"
        )
        lines.extend(_figure_lines(plan))
    for wave in plan.waves:
        lines.append(f"wave {wave.index} ({len(wave.servers)} server(s)):")
        if len(wave.groups) > 1 or any(g.expected_peak_w for g in wave.groups):
            lines.extend(_group_lines(plan, wave.groups))
        for sp in wave.servers:
            if sp.left_out:
                lines.append(f"  {sp.server.name}: LEFT OUT — {sp.skip_reason}")
                continue
            if sp.skipped:
                lines.append(f"  {sp.server.name}: skip — {sp.skip_reason}")
                continue
            note = f" — {sp.note}" if sp.note else ""
            group = f" [group {sp.group}]" if sp.group and len(wave.groups) > 1 else ""
            lines.append(f"  {sp.server.name} (now {sp.power_state}){group}{note}:")
            for n, step in enumerate(sp.steps, start=1):
                notes = []
                if step.optional:
                    notes.append("best effort")
                if step.escalation:
                    notes.append("only if the wait before timed out")
                if step.only_if_off:
                    notes.append("only if PowerState is Off")
                if step.kind is StepKind.WAIT and step.escalate_on_timeout:
                    notes.append("then escalate")
                note = f"  [{'; '.join(notes)}]" if notes else ""
                lines.append(f"    {n}. {step.call}{note}")
    return lines
