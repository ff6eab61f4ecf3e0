"""Running a power-budgeted wave: a group starts only once the groups before it settled.

The plan split each wave's power-ons into groups (``power_budget``); here the
runner learns when it may start the next one. A server of a budgeted rack
*settles* when the ``rack-power`` probe reads its draw at or below its
expected steady draw (``PlannedStep.settle_w``) twice in a row, and above
0 W: a BMC averages its reading over an interval, so right after a
power-on it may still show the draw from before (0 W, or a low figure)
while the supplies already carry the boot peak. Reads are
``PlanOptions.settle_poll_s`` apart (default 5 s: each read is several
GETs on a BMC that is busy booting its host). A server that could not be
read, or whose draw stayed higher until the settle timeout, did not settle:
the later groups' servers that share a rack or circuit with it are held (left
out, named), because starting them could take the rack past its budget.

``BudgetWatch`` also keeps, per rack and circuit, the highest load seen: the
sum of each member's latest reading (the draw read when planning for those
not read since). It is sampled at the settle reads, so it is a lower bound
of the true peak, and it is what the batch result reports next to the
expected peak.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pacs_tui.batch.plan import BatchPlan, PlannedStep, WavePlan
from pacs_tui.batch.power_budget import budget_keys
from pacs_tui.batch.readings import Readings
from pacs_tui.inventory import Inventory, Server

RACK_POWER_PROBE = "rack-power"
SETTLED_READS = 2  # reads in a row at or below the steady draw that make it settled


async def read_draw(readings: Readings, server: Server) -> tuple[float | None, str]:
    """The server's draw now (W) from the ``rack-power`` probe, or None and why not."""
    if not readings.has(RACK_POWER_PROBE):
        return None, "the rack-power probe is not loaded"
    reading = await readings.read(server, RACK_POWER_PROBE)
    if reading is None:
        return None, "no rack-power reading"
    watts = reading.facts.get("watts")
    if isinstance(watts, int | float) and not isinstance(watts, bool):
        return float(watts), ""
    # Only why the draw is missing: the reading's detail also carries inlet and supplies.
    if "power" in (reading.facts.get("not_offered") or ()):
        return None, "the BMC offers no power reading (no PowerSubsystem nor Power)"
    why = ", ".join(str(w) for w in reading.facts.get("unread") or ())
    return None, why or reading.detail or f"no draw reported ({reading.state})"


@dataclass
class _Settle:
    ok: bool
    detail: str


@dataclass
class BudgetWatch:
    """Group order, settle results and measured peaks of one budgeted plan."""

    plan: BatchPlan
    poll_s: float
    latest_w: dict[str, float] = field(default_factory=dict)
    measured_peak_w: dict[str, float] = field(default_factory=dict)
    expected_peak_w: dict[str, float] = field(default_factory=dict)
    _settled: dict[str, _Settle] = field(default_factory=dict)
    _group_of: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (wave, group)
    _members: dict[tuple[int, int], set[str]] = field(default_factory=dict)
    _done: dict[tuple[int, int], asyncio.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        budget = self.plan.budget
        assert budget is not None
        self.latest_w.update(budget.draw_now)
        for wave in self.plan.waves:
            for sp in wave.servers:
                where = (wave.index, sp.group or 1)
                self._group_of[sp.server.name] = where
                self._members.setdefault(where, set()).add(sp.server.name)
                self._done.setdefault(where, asyncio.Event())
            for group in wave.groups:
                for key, watts in group.expected_peak_w.items():
                    self.expected_peak_w[key] = max(self.expected_peak_w.get(key, 0.0), watts)
        for key in budget.budgets:
            self.measured_peak_w[key] = self._load(key)

    def keys(self, name: str) -> tuple[str, ...]:
        """The budget keys ``name`` draws from."""
        assert self.plan.budget is not None
        return self.plan.budget.keys.get(name, ())

    async def wait_turn(self, wave: WavePlan, name: str, stop: Callable[[], bool]) -> str:
        """Wait until every earlier group of ``name``'s wave settled; '' or why it is held.

        Held when any server before it, in an earlier group or an earlier wave
        (whose servers have all ended by now), shares a budget with it and did
        not settle: the plan counted that one at its steady draw.
        """
        index, group = self._group_of.get(name, (wave.index, 1))
        for earlier in range(1, group):
            event = self._done[(index, earlier)]
            while not event.is_set() and not stop():
                try:
                    await asyncio.wait_for(event.wait(), self.poll_s)
                except TimeoutError:
                    continue
            if stop():
                return ""
        mine = set(self.keys(name))
        before = sorted(where for where in self._members if where < (index, group))
        for where in before:
            for other in sorted(self._members[where]):
                settle = self._settled.get(other)
                shared = sorted(mine.intersection(self.keys(other)))
                if settle is not None and not settle.ok and shared:
                    return (
                        f"held: {other} did not settle ({settle.detail}); "
                        f"starting it could take {', '.join(shared)} past the budget"
                    )
        return ""

    def is_marked(self, name: str) -> bool:
        """Whether ``name``'s settle result is known."""
        return name in self._settled

    def mark(self, name: str, ok: bool, detail: str = "") -> None:
        """Record ``name``'s settle result (once); its group is done when all are."""
        if name in self._settled:
            return
        self._settled[name] = _Settle(ok, detail)
        where = self._group_of.get(name)
        if where is not None and self._members[where] <= self._settled.keys():
            self._done[where].set()

    def note_draw(self, name: str, watts: float) -> None:
        """A draw read for ``name``: update the measured peaks of its racks."""
        self.latest_w[name] = watts
        for key in self.keys(name):
            self.measured_peak_w[key] = max(self.measured_peak_w.get(key, 0.0), self._load(key))

    def _load(self, key: str) -> float:
        assert self.plan.budget is not None
        return sum(self.latest_w.get(n, 0.0) for n in self.plan.budget.members.get(key, ()))

    def peaks(self) -> dict[str, dict[str, float | None]]:
        """Per budget key: budget, expected peak and measured (sampled) peak, W.

        The measured peak is ``None`` when no draw of the key's servers was read,
        neither when planning nor at a settle step: unknown, not 0 W.
        """
        budget = self.plan.budget
        assert budget is not None
        return {
            key: {
                "budget_w": watts,
                "expected_peak_w": round(self.expected_peak_w.get(key, 0.0)),
                "measured_peak_w": (
                    round(self.measured_peak_w.get(key, 0.0))
                    if any(n in self.latest_w for n in budget.members.get(key, ()))
                    else None
                ),
            }
            for key, watts in sorted(budget.budgets.items())
        }

    async def settle(
        self, readings: Readings, server: Server, step: PlannedStep, stop: Callable[[], bool]
    ) -> tuple[str, str]:
        """Read the draw until ≤ ``step.settle_w``, the timeout, or ``stop()``.

        Returns ``(label, detail)``: ``ok``, ``timeout`` or ``aborted``; marks the server.
        """
        started = time.monotonic()
        deadline = started + step.timeout_s
        why = ""
        watts: float | None = None
        last: float | None = None  # the last draw read, if any was
        below = 0  # reads in a row at or below the steady draw
        while True:
            watts, why = await read_draw(readings, server)
            elapsed = time.monotonic() - started
            if watts is not None:
                self.note_draw(server.name, watts)
                last = watts
            below = below + 1 if watts is not None and 0 < watts <= step.settle_w else 0
            if below >= SETTLED_READS:
                detail = f"{watts:.0f} W ≤ {step.settle_w:.0f} W after {elapsed:.1f} s"
                self.mark(server.name, True, detail)
                return "ok", detail
            if stop():
                self.mark(server.name, False, "aborted while settling")
                return "aborted", "aborted while its draw settled"
            now = time.monotonic()
            if now >= deadline:
                if last is None:  # never read: no figure to compare, only why
                    detail = f"draw not read in {step.timeout_s:g} s ({why})"
                else:
                    seen = (
                        f"reads {watts:.0f} W"
                        if watts is not None
                        else f"last read {last:.0f} W, then unreadable: {why}"
                    )
                    detail = f"not ≤ {step.settle_w:.0f} W after {step.timeout_s:g} s ({seen})"
                self.mark(server.name, False, detail)
                return "timeout", detail
            await asyncio.sleep(min(self.poll_s, deadline - now))

    async def final_read(self, readings: Readings, server: Server) -> None:
        """One read for a server that ended without settling (failed, aborted): is it quiet?"""
        if self.is_marked(server.name):
            return
        watts, why = await read_draw(readings, server)
        if watts is not None:
            self.note_draw(server.name, watts)
        below = self.plan.budget.settled_below_w(server.name) if self.plan.budget else None
        if watts is not None and below is not None and watts <= below:
            self.mark(server.name, True, f"{watts:.0f} W")
        else:
            seen = f"reads {watts:.0f} W" if watts is not None else f"unreadable: {why}"
            self.mark(server.name, False, f"ended without settling ({seen})")


async def rack_draws(
    inventory: Inventory, selected: Iterable[Server], readings: Readings, *, limit: int = 64
) -> dict[str, float | None]:
    """The draw now (W, None: unreadable) of every server sharing a budgeted rack with
    ``selected``: one ``rack-power`` read each, at most ``limit`` at once."""
    racks = {s.rack for s in selected if budget_keys(inventory, s)}
    members = [s for s in inventory if s.rack in racks]
    gate = asyncio.Semaphore(limit)

    async def one(server: Server) -> tuple[str, float | None]:
        async with gate:
            watts, _ = await read_draw(readings, server)
            return server.name, watts

    return dict(await asyncio.gather(*(one(s) for s in members)))
