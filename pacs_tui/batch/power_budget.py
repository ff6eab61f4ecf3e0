"""Power budgets: a power-on wave split into groups no rack or circuit can trip on.

Thirty servers of one rack booting at once draw their boot peaks together;
fixed delays between servers are the usual cure and guess both ways. Here
the inventory gives racks (and PDU circuits) a budget (``racks:``), and a
wave's power-ons are packed into groups so that, while a group boots, every
rack and circuit is *expected* to stay within its budget:

    present load + steady draw of the groups before + boot peaks of this group ≤ budget

- **Expected draw per server** (``expected_draw``): from the baseline's
  measured draw (``ServerBaseline.power_watts``): steady = that draw, boot
  peak = ``boot_peak_factor`` × it (default ``DEFAULT_BOOT_PEAK_FACTOR``);
  else from ``nameplate_w`` (the most the server can draw): steady = peak =
  nameplate, which needs no factor. With neither, a server of a budgeted
  rack cannot be planned: the plan is refused rather than guessed.
- **Present load** of a rack: every server of it that this batch does not
  power on, at its draw read when planning (the ``rack-power`` probe's
  ``watts``); one whose draw could not be read counts at its expected
  steady draw, and one with no expectation either refuses the plan.
- **Groups**: first fit in wave order; a server joins the earliest group
  where it and every later group still fit. A server that fits in no group
  (its peak alone over the budget left) refuses the plan.
- **At run time** the runner starts a group only when every server of the
  groups before it has *settled*: its measured draw back at or below its
  expected steady draw (+ ``settle_tolerance``), read by the ``rack-power``
  probe. A draw that does not settle, or cannot be read, holds the later
  groups of that rack (never guessed): they are left out, named.

Units: watts (W). Budget keys are the rack's name (``R01``) and a circuit's
``RACK/CIRCUIT`` (``R01/A``). Pure: no I/O here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pacs_tui.inventory import Inventory, Server

DEFAULT_BOOT_PEAK_FACTOR = 2.0  # boot peak / steady draw when only a baseline draw is known
DEFAULT_SETTLE_TOLERANCE = 0.10  # settled: draw ≤ expected steady × (1 + this)

HINT_NO_DRAW = (
    "capture a baseline while the servers run (baseline capture records each draw) and pass "
    "it (power --baseline, run/serve --power-baseline), or give the servers nameplate_w"
)
HINT_OVER_BUDGET = "raise the rack's budget_w, or power the rack's other servers down first"
HINT_PLAN_TOO_BIG = (
    "this plan's own power-ons need more than the budget even one group after another: "
    "power on part of the rack now and the rest once it runs (its draws then read), or "
    "check the servers' figures (baseline draw, boot_peak_factor, nameplate_w)"
)
HINT_PEAK_ALONE = (
    "a boot peak alone over a budget fits no group: check the server's nameplate_w and "
    "boot_peak_factor (the peak is the baseline draw × boot_peak_factor, capped at "
    "nameplate_w), or the budget_w"
)
HINT_RESTART = (
    "restart fewer of the rack's servers at once, or power them off and on ('on' is staggered)"
)


@dataclass(frozen=True)
class ExpectedDraw:
    """What one server is expected to draw, W, and where the figures come from."""

    peak_w: float | None  # while it boots
    steady_w: float | None  # once booted
    source: str  # "baseline 210 W × 2" or "nameplate 750 W", for the dry run

    @property
    def known(self) -> bool:
        """True when both figures are known."""
        return self.peak_w is not None and self.steady_w is not None


def expected_draw(server: Server, baseline_w: float | None) -> ExpectedDraw:
    """``server``'s expected boot peak and steady draw (W) from a baseline draw or nameplate."""
    factor = server.boot_peak_factor or DEFAULT_BOOT_PEAK_FACTOR
    if baseline_w is not None and baseline_w > 0:
        peak = baseline_w * factor
        source = f"baseline {baseline_w:.0f} W × {factor:g}"
        if server.nameplate_w is not None and server.nameplate_w < peak:
            peak = server.nameplate_w  # it cannot draw more than its supplies give
            source += f", capped at nameplate {server.nameplate_w:.0f} W"
        return ExpectedDraw(peak, baseline_w, source)
    if server.nameplate_w is not None:
        return ExpectedDraw(
            server.nameplate_w, server.nameplate_w, f"nameplate {server.nameplate_w:.0f} W"
        )
    return ExpectedDraw(None, None, "no baseline draw and no nameplate_w")


def budget_keys(inventory: Inventory, server: Server) -> dict[str, float]:
    """The budgets ``server`` draws from: its rack's and its circuit's, by key (W)."""
    rack = inventory.racks.get(server.rack or "")
    if rack is None:
        return {}
    keys: dict[str, float] = {}
    if rack.budget_w is not None:
        keys[rack.name] = rack.budget_w
    circuit = rack.circuits.get(server.circuit or "")
    if circuit is not None:
        keys[f"{rack.name}/{circuit.name}"] = circuit.budget_w
    return keys


@dataclass(frozen=True)
class BudgetGroup:
    """Servers of one wave that power on together, and what each budget expects meanwhile."""

    index: int  # 1-based within the wave
    servers: tuple[str, ...]
    expected_peak_w: Mapping[str, float]  # budget key -> expected draw while it boots

    def to_json(self) -> dict[str, Any]:
        """The group as JSON-able data."""
        return {
            "group": self.index,
            "servers": list(self.servers),
            "expected_peak_w": {k: round(v) for k, v in self.expected_peak_w.items()},
        }


@dataclass(frozen=True)
class PowerBudget:
    """The budgets a plan respects and the figures it was made with (W)."""

    budgets: Mapping[str, float]  # key -> budget
    keys: Mapping[str, tuple[str, ...]]  # server -> its budget keys (budgeted servers only)
    members: Mapping[str, tuple[str, ...]]  # key -> every inventory server drawing from it
    expected: Mapping[str, ExpectedDraw]  # server -> expectation (budgeted servers)
    present_w: Mapping[str, float]  # key -> load when planned, without the servers to boot
    draw_now: Mapping[str, float]  # server -> draw read when planned (readable ones)
    # server -> W counted in present_w although unread (its expected boot peak)
    assumed_w: Mapping[str, float] = field(default_factory=dict)
    off_unread: tuple[str, ...] = ()  # read Off, no draw given: counted at 0 W
    # power-ons whose draw could not be read when planned -> their boot peak (W), counted
    # for good (no settle step: a draw that cannot be read would never settle)
    at_peak_w: Mapping[str, float] = field(default_factory=dict)
    settle_tolerance: float = DEFAULT_SETTLE_TOLERANCE

    def settled_below_w(self, server: str) -> float | None:
        """The draw ``server`` must fall to before later groups of its racks start."""
        steady = self.expected[server].steady_w if server in self.expected else None
        return None if steady is None else steady * (1 + self.settle_tolerance)


class PresentLoad(NamedTuple):
    """``present_load``'s answer: W by budget key, refusals, and the draws assumed."""

    load: dict[str, float]  # budget key -> W drawn by servers this plan does not power on
    refusals: list[str]  # servers whose draw is neither readable nor known
    assumed: dict[str, float]  # server -> W counted for it: unread, at its expected boot peak
    off_unread: list[str]  # read Off, no draw given: counted at 0 W


@dataclass
class Packing:
    """The output of ``pack_wave``: groups and the refusals that block the plan."""

    groups: list[list[str]] = field(default_factory=list)
    peaks: list[dict[str, float]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    peak_alone: bool = False  # a refusal is a boot peak alone over a budget
    refused_keys: set[str] = field(default_factory=set)  # the budgets the refusals name


def present_load(
    inventory: Inventory,
    booting: Iterable[str],
    draw_now: Mapping[str, float | None],
    baseline_w: Mapping[str, float],
    off: Collection[str] = frozenset(),
) -> PresentLoad:
    """Per budget key of ``booting``, what its servers not powered on by this plan draw (W).

    A server whose draw could not be read counts at its expected boot peak
    (baseline × factor, else nameplate), named in ``assumed``: it may be booting
    now (powered on by an earlier batch moments ago), and nothing can show it
    has settled; with neither figure it refuses.
    One of ``off`` (PowerState read Off now) whose BMC gives no draw counts at
    0 W, named in ``off_unread``: it stays off in this plan, and its standby
    draw is what a budget's margin is for.
    """
    skip = set(booting)
    # Only the budgets this plan draws from: other racks are none of its business.
    touched = {key for name in skip for key in budget_keys(inventory, inventory.server(name))}
    load: dict[str, float] = {}
    refusals: list[str] = []
    assumed: dict[str, float] = {}
    off_unread: list[str] = []
    for server in inventory:
        keys = touched.intersection(budget_keys(inventory, server))
        if not keys or server.name in skip:
            continue
        now = draw_now.get(server.name)
        if now is None and server.name in off:
            off_unread.append(server.name)
            continue
        if now is None:
            peak = expected_draw(server, baseline_w.get(server.name)).peak_w
            if peak is None:
                refusals.append(
                    f"{server.name}: its draw could not be read and is not known "
                    f"(rack {server.rack}'s present load cannot be bounded)"
                )
                continue
            now = assumed[server.name] = peak
        for key in keys:
            load[key] = load.get(key, 0.0) + now
    return PresentLoad(load, refusals, assumed, off_unread)


def pack_wave(
    booting: Sequence[str],
    keys: Mapping[str, Mapping[str, float]],
    expected: Mapping[str, ExpectedDraw],
    prior: Mapping[str, float],
) -> Packing:
    """Groups for the servers of one wave that power on, in order (first fit).

    ``keys``: server -> its budgets (key -> W; empty: unbounded). ``expected``
    covers every server with budgets. ``prior``: load per key before the wave
    (present load plus the steady draw of earlier waves' power-ons).
    """
    out = Packing()
    steady: list[dict[str, float]] = []  # per group, per key
    peak: list[dict[str, float]] = []

    def fits(name: str, g: int) -> bool:
        draw = expected[name]
        assert draw.peak_w is not None and draw.steady_w is not None
        for key, budget in keys[name].items():
            before = prior.get(key, 0.0) + sum(s.get(key, 0.0) for s in steady[:g])
            # Its own group: everyone's peaks plus its own.
            if before + (peak[g].get(key, 0.0) if g < len(peak) else 0.0) + draw.peak_w > budget:
                return False
            # Every later group now boots on top of its steady draw as well.
            running = before + (steady[g].get(key, 0.0) if g < len(steady) else 0.0)
            for h in range(g + 1, len(peak)):
                if running + draw.steady_w + peak[h].get(key, 0.0) > budget:
                    return False
                running += steady[h].get(key, 0.0)
        return True

    for name in booting:
        if not keys.get(name):
            g = 0  # no budget: it goes with the first group
        else:
            g = next((i for i in range(len(out.groups) + 1) if fits(name, i)), -1)
            if g < 0:
                why, alone, key = _no_fit(name, expected[name], keys[name], prior, steady)
                out.refusals.append(why)
                out.peak_alone = out.peak_alone or alone
                out.refused_keys.add(key)
                continue
        if g == len(out.groups):
            out.groups.append([])
            steady.append({})
            peak.append({})
        out.groups[g].append(name)
        placed = expected.get(name)
        if placed is not None and placed.peak_w is not None and placed.steady_w is not None:
            for key in keys.get(name, {}):
                steady[g][key] = steady[g].get(key, 0.0) + placed.steady_w
                peak[g][key] = peak[g].get(key, 0.0) + placed.peak_w
    for g in range(len(out.groups)):
        before = {
            key: prior.get(key, 0.0) + sum(s.get(key, 0.0) for s in steady[:g]) for key in peak[g]
        }
        out.peaks.append({key: before[key] + peak[g][key] for key in sorted(peak[g])})
    return out


def _no_fit(
    name: str,
    draw: ExpectedDraw,
    keys: Mapping[str, float],
    prior: Mapping[str, float],
    steady: Sequence[Mapping[str, float]],
) -> tuple[str, bool, str]:
    """Why ``name`` fits no group, in the terms an operator can act on; whether its
    boot peak alone is over a budget (no other server's draw is to blame); which budget."""
    assert draw.peak_w is not None and draw.steady_w is not None
    load = {k: prior.get(k, 0.0) + sum(s.get(k, 0.0) for s in steady) for k in keys}
    worst = max(keys, key=lambda k: load[k] + draw.peak_w - keys[k])  # type: ignore[operator]
    budget = keys[worst]
    head = f"{name}: boot peak {draw.peak_w:.0f} W ({draw.source})"
    if draw.peak_w > budget:
        return f"{head} alone is over {worst}'s budget {budget:.0f} W", True, worst
    why = (
        f"{head} does not fit {worst}'s budget {budget:.0f} W: {load[worst]:.0f} W is expected "
        "there before it boots (the servers not powered on by this plan, at their draw now, "
        "and the power-ons before it, settled)"
    )
    if load[worst] + draw.steady_w > budget:
        why += f"; even settled, {worst} would draw {load[worst] + draw.steady_w:.0f} W"
    return why, False, worst


def wave_steady(
    names: Iterable[str],
    keys: Mapping[str, Mapping[str, float]],
    expected: Mapping[str, ExpectedDraw],
) -> dict[str, float]:
    """The steady draw the power-ons ``names`` add per key once booted (W)."""
    out: dict[str, float] = {}
    for name in names:
        draw = expected.get(name)
        if draw is None or draw.steady_w is None:
            continue
        for key in keys.get(name, {}):
            out[key] = out.get(key, 0.0) + draw.steady_w
    return out
