"""The rehearsal's rack power budgets, and what the power-up did with them.

The simulator's inventory gives no budgets, so the rehearsal sets them as a
facilities team would from the draw the baseline measured before the move:
each rack's steady draw plus room for two boot peaks (``HEADROOM_PEAKS``),
5 % on top. The ``rack-over-budget`` plant cuts one rack's budget to its
steady draw plus a single boot peak (``tight_budget``) and arms that rack's
simulated breaker at it: the rack trips if a wave boots at once, so the
power-up must stagger it.

``budget_lines`` writes the report's lines: per rack, its budget, the
plan's expected peak, the peak the runner read and, for an armed breaker,
the simulator's own peak and trips.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from pacs_tui.baseline.model import Baseline
from pacs_tui.batch.plan import BatchPlan
from pacs_tui.batch.result import highest_read
from pacs_tui.inventory import Inventory, Rack, Server

HEADROOM_PEAKS = 2  # boot peaks (of its largest server) a rack's budget leaves room for
HEADROOM_FACTOR = 1.05
TIGHT_MARGIN_W = 20.0


def steady_by_rack(
    servers: Iterable[Server], baseline: Baseline
) -> tuple[dict[str, list[float]], list[str]]:
    """Per rack, the moved servers' draws the baseline measured (W); and servers without one."""
    measured = baseline.power_draws()
    draws: dict[str, list[float]] = {}
    missing: list[str] = []
    for server in servers:
        if server.rack is None:
            continue
        watts = measured.get(server.name)
        if watts is None:
            missing.append(server.name)
            continue
        draws.setdefault(server.rack, []).append(watts)
    return draws, missing


def normal_budget(draws: list[float]) -> float:
    """A rack's budget (W): steady draw + ``HEADROOM_PEAKS`` of its largest, +5 %, to 10 W."""
    raw = (sum(draws) + HEADROOM_PEAKS * max(draws)) * HEADROOM_FACTOR
    return float(math.ceil(raw / 10) * 10)


def tight_budget(draws: list[float]) -> float:
    """The planted budget (W): steady draw + one boot peak of its largest server, + 20 W.

    Everything fits once booted, and one server at a time can boot on top;
    a wave booting at once cannot (the simulator's boot peak is 1.6 × draw).
    """
    return sum(draws) + max(draws) + TIGHT_MARGIN_W


def with_budgets(inventory: Inventory, budgets: Mapping[str, float]) -> Inventory:
    """``inventory`` with ``racks:`` giving each rack in ``budgets`` its budget."""
    racks = {name: Rack(name, watts) for name, watts in budgets.items()}
    return replace(inventory, racks=racks)


def at_once_peak(plan: BatchPlan, key: str) -> float:
    """The highest peak ``key`` would be expected to reach had each wave booted at once (W)."""
    budget = plan.budget
    if budget is None:
        return 0.0
    worst = 0.0
    for wave in plan.waves:
        if not wave.groups:
            continue
        first = wave.groups[0].expected_peak_w.get(key)
        later = sum(
            budget.expected[name].peak_w or 0.0
            for group in wave.groups[1:]
            for name in group.servers
            if key in budget.keys.get(name, ())
        )
        if first is None and not later:
            continue
        if first is None:
            # The wave's first group drew nothing from it: its load before the wave.
            first = _before_wave(plan, wave.index, key)
        worst = max(worst, first + later)
    return worst


def _before_wave(plan: BatchPlan, index: int, key: str) -> float:
    budget = plan.budget
    assert budget is not None
    load = budget.present_w.get(key, 0.0)
    for wave in plan.waves:
        if wave.index >= index:
            break
        for group in wave.groups:
            for name in group.servers:
                if key in budget.keys.get(name, ()):
                    load += budget.expected[name].steady_w or 0.0
    return load


def staggered(plan: BatchPlan, key: str) -> int:
    """How many of the plan's waves were split into more than one group for ``key``."""
    budget = plan.budget
    if budget is None:
        return 0
    count = 0
    for wave in plan.waves:
        groups = [g for g in wave.groups if any(key in budget.keys.get(n, ()) for n in g.servers)]
        count += len(groups) > 1
    return count


def budget_lines(
    plan: BatchPlan | None,
    peaks: Mapping[str, Mapping[str, float | None]],
    breakers: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """The report's lines, one per budgeted rack the power-up drew from."""
    if plan is None or plan.budget is None:
        return []
    lines = []
    for key, peak in sorted(peaks.items()):
        line = (
            f"{key}: budget {peak['budget_w']:.0f} W; expected peak "
            f"{peak['expected_peak_w']:.0f} W ({at_once_peak(plan, key):.0f} W had each wave "
            f"booted at once; {staggered(plan, key)} wave(s) staggered); highest load read "
            f"{highest_read(peak)} (at the settle steps: a lower bound of the peak)"
        )
        breaker = breakers.get(key)
        if breaker is not None and breaker.get("trip_w") is not None:
            trips = breaker.get("trips") or []
            line += (
                f"; breaker at {breaker['trip_w']:.0f} W: simulator's peak "
                f"{breaker['peak_w']:.0f} W, " + (f"TRIPPED {len(trips)}×" if trips else "held")
            )
        lines.append(line)
    return lines
