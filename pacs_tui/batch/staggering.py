"""Power budgets in a plan: power-on waves split into groups, restarts checked.

``stagger`` packs each wave's power-ons into groups within every rack's and
circuit's budget (``power_budget.pack_wave``) and adds a SETTLE step after
each budgeted server's power-on, which the runner waits on before the next
group (``settle``). ``check_restart`` refuses a restart whose wave would boot
a rack past its budget at once (a restart is not staggered). Refusals and
their hints go to the lists the plan builder passes in. No I/O: the draws
were read before (``settle.rack_draws``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from pacs_tui.batch.plan_model import (
    PlannedStep,
    PlanOptions,
    ServerPlan,
    StepKind,
    WaitFor,
    WavePlan,
)
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
from pacs_tui.inventory import Inventory


def stagger(
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


def check_restart(
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
    """``sp`` in ``group``, with a SETTLE step after its power-on when its peak passes.

    A server counted at its nameplate (steady = peak) needs none: the plan
    already counts it at its peak for good, and a BMC that reports no draw
    would otherwise hold its rack's later groups for nothing.
    """
    draw = expected.get(sp.server.name)
    if draw is None or draw.steady_w is None or draw.peak_w is None:
        return replace(sp, group=group)
    if draw.peak_w <= draw.steady_w:
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
