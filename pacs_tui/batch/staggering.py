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

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

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
    HINT_PEAK_ALONE,
    HINT_PLAN_TOO_BIG,
    HINT_RESTART,
    BudgetGroup,
    ExpectedDraw,
    PowerBudget,
    PresentLoad,
    budget_keys,
    expected_draw,
    pack_wave,
    present_load,
    wave_steady,
)
from pacs_tui.inventory import Inventory


@dataclass(frozen=True)
class Draws:
    """The figures a budgeted plan is made with (``_draws``)."""

    keys: dict[str, dict[str, float]]  # sending server -> its budgets (key -> W)
    budgeted: list[str]  # the sending servers that draw from a budget
    expected: dict[str, ExpectedDraw]  # those -> their expected draw
    present: PresentLoad  # the present load of the servers that send nothing, by budget key
    at_peak: dict[str, float]  # power-ons whose draw is unreadable now -> peak, for good

    @property
    def budgets(self) -> dict[str, float]:
        """Every budget the budgeted servers draw from: key -> W."""
        return {key: w for name in self.budgeted for key, w in self.keys[name].items()}


def _draws(
    inventory: Inventory,
    waves: list[WavePlan],
    opts: PlanOptions,
    draw_now: Mapping[str, float | None],
    refusals: list[str],
    hints: dict[str, None],
    off: Collection[str],
) -> Draws | None:
    """The figures a budgeted plan needs; None when no server sent to draws from a
    budget, or when a draw is unknown (then refused, with the hint).

    A power-on whose draw cannot be read now (a BMC that offers none, or did not
    answer) is counted at its boot peak for good: its draw could never be seen
    to settle, so nothing is to wait for it.
    """
    sending = [sp.server.name for wave in waves for sp in wave.servers if sp.sends]
    keys = {name: budget_keys(inventory, inventory.server(name)) for name in sending}
    budgeted = [name for name in sending if keys[name]]
    if not budgeted:
        return None
    expected: dict[str, ExpectedDraw] = {}
    at_peak: dict[str, float] = {}
    for name in budgeted:
        draw = expected_draw(inventory.server(name), opts.baseline_w.get(name))
        if draw.known:
            assert draw.peak_w is not None and draw.steady_w is not None
            if draw_now.get(name) is None and draw.peak_w > draw.steady_w:
                at_peak[name] = draw.peak_w
                draw = ExpectedDraw(draw.peak_w, draw.peak_w, f"{draw.source}, for good")
            expected[name] = draw
            continue
        source = draw.source
        if opts.baseline_w and name not in opts.baseline_w:
            source = "the baseline given has no draw for it, and it has no nameplate_w"
        refusals.append(f"{name}: rack {inventory.server(name).rack} has a power budget, "
                        f"but its expected draw is unknown ({source})")  # fmt: skip
    present = present_load(inventory, sending, draw_now, opts.baseline_w, off)
    refusals.extend(present.refusals)
    if len(expected) < len(budgeted) or present.refusals:
        hints[HINT_NO_DRAW] = None
        return None
    return Draws(keys, budgeted, expected, present, at_peak)


def stagger(
    inventory: Inventory,
    waves: list[WavePlan],
    opts: PlanOptions,
    draw_now: Mapping[str, float | None],
    refusals: list[str],
    hints: dict[str, None],
    off: Collection[str] = frozenset(),
) -> tuple[list[WavePlan], PowerBudget | None]:
    """Split each wave's power-ons into groups within the racks' budgets (``power_budget``).

    ``off``: servers whose PowerState reads Off now (``present_load``).
    """
    found = _draws(inventory, waves, opts, draw_now, refusals, hints, off)
    if found is None:
        return waves, None
    keys, expected, present = found.keys, found.expected, found.present
    prior = dict(present.load)
    out: list[WavePlan] = []
    for wave in waves:
        names = [sp.server.name for sp in wave.servers if sp.sends]
        packing = pack_wave(names, keys, expected, prior)
        if packing.refusals:
            refusals.extend(packing.refusals)
            if packing.peak_alone:
                hints[HINT_PEAK_ALONE] = None
            elif any(present.load.get(k, 0.0) > 0 for k in packing.refused_keys):
                hints[HINT_OVER_BUDGET] = None  # the rack's other servers take room
            else:
                hints[HINT_PLAN_TOO_BIG] = None  # nothing else draws: the plan itself is
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
    out = _without_idle_settles(out, keys)
    members: dict[str, list[str]] = {}
    for server in inventory:
        for key in budget_keys(inventory, server):
            members.setdefault(key, []).append(server.name)
    budget = PowerBudget(
        budgets=found.budgets,
        keys={name: tuple(keys[name]) for name in found.budgeted},
        members={key: tuple(names) for key, names in members.items()},
        expected=expected,
        present_w=present.load,
        draw_now={n: w for n, w in draw_now.items() if w is not None},
        assumed_w=present.assumed,
        off_unread=tuple(present.off_unread),
        at_peak_w=found.at_peak,
    )
    return out, budget


def _without_idle_settles(
    waves: list[WavePlan], keys: Mapping[str, Mapping[str, float]]
) -> list[WavePlan]:
    """Drop the SETTLE step of a server no later power-on shares a budget with.

    Its settling would hold no one (the runner holds only later servers of
    its racks), and on a BMC that reports no draw it would wait out the
    whole settle timeout for nothing.
    """
    later: set[str] = set()  # budget keys of the power-ons after this point
    kept: dict[str, bool] = {}
    positions = sorted(
        {(w.index, sp.group or 1) for w in waves for sp in w.servers if sp.sends}, reverse=True
    )
    for wave_index, group in positions:
        here = [
            sp.server.name
            for w in waves
            if w.index == wave_index
            for sp in w.servers
            if sp.sends and (sp.group or 1) == group
        ]
        for name in here:
            kept[name] = bool(later.intersection(keys.get(name, {})))
        for name in here:
            later.update(keys.get(name, {}))
    return [
        replace(
            wave,
            servers=tuple(
                sp
                if kept.get(sp.server.name, True)
                else replace(sp, steps=tuple(s for s in sp.steps if s.kind is not StepKind.SETTLE))
                for sp in wave.servers
            ),
        )
        for wave in waves
    ]


def check_restart(
    inventory: Inventory,
    waves: list[WavePlan],
    opts: PlanOptions,
    draw_now: Mapping[str, float | None],
    refusals: list[str],
    hints: dict[str, None],
    off: Collection[str] = frozenset(),
) -> None:
    """Refuse a restart whose waves would boot a rack past its budget (not staggered).

    While a wave reboots, the rack draws its other servers' present load, the
    steady draw of every other restarted server, and this wave's boot peaks.
    """
    found = _draws(inventory, waves, opts, draw_now, refusals, hints, off)
    if found is None:
        return
    keys, expected, present, budgets = found.keys, found.expected, found.present, found.budgets
    steady_all = wave_steady(found.budgeted, keys, expected)
    for wave in waves:
        names = [sp.server.name for sp in wave.servers if sp.sends and sp.server.name in expected]
        peaks: dict[str, float] = {}
        for name in names:
            for key in keys[name]:
                peaks[key] = peaks.get(key, 0.0) + (expected[name].peak_w or 0.0)
        own = wave_steady(names, keys, expected)
        for key, peak in sorted(peaks.items()):
            load = present.load.get(key, 0.0) + steady_all.get(key, 0.0) - own.get(key, 0.0) + peak
            if load > budgets[key]:
                who = names[0] if len(names) == 1 else f"{len(names)} server(s)"
                refusals.append(
                    f"restart wave {wave.index}: {who} rebooting at once would "
                    f"take {key} to {load:.0f} W, over its budget {budgets[key]:.0f} W "
                    "(a restart is not staggered)"
                )
                alone = any((expected[n].peak_w or 0.0) > budgets[key] for n in names)
                if alone:
                    hints[HINT_PEAK_ALONE] = None
                else:
                    hints[HINT_RESTART if len(names) > 1 else HINT_OVER_BUDGET] = None


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
