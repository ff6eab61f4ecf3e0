"""What the rehearsal plants at the new site, and the racks' power budgets there.

``NewSitePlants`` is the part of ``Rehearsal`` that, after transit, gives
the moved racks their budgets (from the draw measured before the move,
``rack_budgets``) and plants each problem asked for, through the
simulator's control API: one method per plant, one line in
``_plant_in_new_site``'s table. After the power-up it reports what the
racks drew. It shares the rehearsal's state (declared below, set by
``Rehearsal``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pacs_tui.batch.plan import BatchPlan
from pacs_tui.batch.result import highest_read
from pacs_tui.inventory import Inventory, Server
from pacs_tui.rehearsal.control_client import SimControl
from pacs_tui.rehearsal.options import (
    CLINIC_LINK_DOWN,
    DEAD_ON_ARRIVAL,
    PSU_UNPLUGGED,
    RACK_OVER_BUDGET,
    SLOW_STORAGE,
    SWAPPED_SERVER,
    RehearsalOptions,
)
from pacs_tui.rehearsal.outcome import Detection, RehearsalResult, RehearsalStopped
from pacs_tui.rehearsal.rack_budgets import (
    budget_lines,
    normal_budget,
    staggered,
    steady_by_rack,
    tight_budget,
    with_budgets,
)


class NewSitePlants:
    """Budgets and plants at the new site; mixed into ``Rehearsal``."""

    # The rehearsal's state these methods read and change (``Rehearsal.__init__``).
    options: RehearsalOptions
    result: RehearsalResult
    control: SimControl | None
    inventory: Inventory | None
    written: Inventory | None
    before: Any
    planted_on: dict[str, str]
    budget_victim: str | None
    power_up_plan: BatchPlan | None
    power_up_peaks: dict[str, dict[str, float | None]]

    @property
    def moved(self) -> list[Server]:
        """Every server that moves (``Rehearsal.moved``)."""
        raise NotImplementedError

    def say(self, line: str) -> None:
        """One progress line (``Rehearsal.say``)."""
        raise NotImplementedError

    async def _plant_in_new_site(self) -> None:
        """Plant each problem asked for, in this table's order. A planter returns what
        it did and records its victims in ``planted_on``, so the next one picks others:
        one more plant is one more method and one more line here."""
        planters: dict[str, Callable[[], Awaitable[str]]] = {
            SLOW_STORAGE: self._plant_slow_storage,
            SWAPPED_SERVER: self._plant_swapped_server,
            DEAD_ON_ARRIVAL: self._plant_dead_on_arrival,
            CLINIC_LINK_DOWN: self._plant_clinic_link_down,
            PSU_UNPLUGGED: self._plant_psu_unplugged,
            RACK_OVER_BUDGET: self._plant_rack_over_budget,
        }
        for plant, planter in planters.items():
            if plant in self.options.plants:
                self.say(f"  planted {plant}: {await planter()}")

    def _budget_summary(self) -> str:
        assert self.inventory is not None
        shown = ", ".join(
            f"{name} {rack.budget_w or 0:.0f} W"
            + (" (planted)" if name == self.budget_victim else "")
            for name, rack in self.inventory.racks.items()
        )
        return f"rack budgets {shown or 'none'}"

    def _set_rack_budgets(self) -> None:
        """Give every rack of moved servers a budget from the draw measured before the move
        (``rack_budgets``); the power-up plan then staggers within it."""
        assert self.inventory is not None and self.written is not None
        if self.before is None:
            return
        draws, missing = steady_by_rack(self.moved, self.before)
        if missing:
            # Their boot peak cannot be expected: the plan would refuse their racks.
            why = f"no draw measured before the move for: {', '.join(missing)}"
            self.result.detections.append(
                Detection("rack-draw-unknown", f"{why}; their racks get no budget")
            )
            for server in missing:
                draws.pop(self.inventory.server(server).rack or "", None)
        budgets = {rack: normal_budget(watts) for rack, watts in sorted(draws.items())}
        self.inventory = with_budgets(self.inventory, budgets)
        self.written = with_budgets(self.written, budgets)

    async def _plant_rack_over_budget(self) -> str:
        """The rack with the most moved servers gets a budget of its steady draw plus one
        boot peak, and its simulated breaker trips above it."""
        assert self.inventory is not None and self.written is not None
        assert self.control is not None and self.before is not None
        draws, _ = steady_by_rack(self.moved, self.before)
        budgeted = {r: w for r, w in draws.items() if r in self.inventory.racks}
        if not budgeted:
            raise RehearsalStopped("no moved rack with a measured draw to put over budget")
        rack = max(sorted(budgeted), key=lambda r: len(budgeted[r]))
        tight = tight_budget(budgeted[rack])
        racks = {name: r.budget_w or 0.0 for name, r in self.inventory.racks.items()}
        racks[rack] = tight
        self.inventory = with_budgets(self.inventory, racks)
        self.written = with_budgets(self.written, racks)
        await self.control.call("POST", f"/racks/{rack}/breaker", {"trip_w": tight})
        self.budget_victim = rack
        return (
            f"rack {rack}'s circuit gives {tight:.0f} W: its {len(budgeted[rack])} servers' "
            f"steady draw {sum(budgeted[rack]):.0f} W and one boot peak; its breaker trips above"
        )

    async def _rack_power_report(self) -> None:
        """After the power-up: each budgeted rack's expected and measured peaks, and what
        the rack-over-budget plant's breaker saw."""
        assert self.control is not None
        plan = self.power_up_plan
        if plan is None or plan.budget is None:
            return
        breakers = {b["rack"]: b for b in await self.control.call("GET", "/racks")}
        peaks = self.power_up_peaks
        self.result.rack_power = budget_lines(plan, peaks, breakers)
        for rack, breaker in sorted(breakers.items()):
            for trip in breaker.get("trips") or []:
                self.result.detections.append(Detection(
                    "rack-tripped",
                    f"{rack}: breaker at {breaker['trip_w']:.0f} W tripped at {trip['draw_w']:.0f} W "
                    f"and cut {len(trip['servers'])} server(s)",
                ))  # fmt: skip
        victim = self.budget_victim
        if victim is not None and victim in peaks:
            breaker = breakers.get(victim, {})
            waves = staggered(plan, victim)
            if waves and not breaker.get("trips"):
                peak = peaks[victim]
                self.result.detections.append(Detection(
                    RACK_OVER_BUDGET,
                    f"{victim}: a wave booting at once would pass its {peak['budget_w']:.0f} W "
                    f"budget; {waves} wave(s) staggered into groups; expected peak "
                    f"{peak['expected_peak_w']:.0f} W, highest load read {highest_read(peak)}, "
                    f"breaker held (simulator's peak {breaker.get('peak_w', 0):.0f} W)",
                ))  # fmt: skip
            elif not waves:
                self.result.detections.append(Detection(
                    "rack-over-budget-missed", f"{victim}: the power-up plan did not stagger it"
                ))  # fmt: skip

    def _mark(self, plant: str, *names: str) -> None:
        for name in names:
            self.planted_on.setdefault(name, plant)

    async def _plant_slow_storage(self) -> str:
        assert self.control is not None
        role = self.options.slow_storage_role
        victims = [s.name for s in self.moved if s.role == role and s.dicom is not None]
        if not victims:
            raise RehearsalStopped(f"no moved DICOM server of role {role} to slow down")
        delay = self.options.slow_storage_delay_s
        await self.control.set_faults(victims, {"dicom_find_delay_s": delay})
        self._mark(SLOW_STORAGE, *victims)
        return f"{len(victims)} {role} server(s) +{delay * 1000:.0f} ms per C-FIND"

    async def _plant_swapped_server(self) -> str:
        assert self.control is not None
        a, b = self._swap_pair()
        await self.control.call("POST", "/swap-hardware", {"a": a, "b": b})
        self._mark(SWAPPED_SERVER, a, b)
        return f"{a} and {b} racked in each other's place"

    async def _plant_dead_on_arrival(self) -> str:
        assert self.control is not None
        victim = self._dead_on_arrival_victim()
        await self.control.set_faults([victim], {"dead_on_arrival": True})
        self._mark(DEAD_ON_ARRIVAL, victim)
        return f"{victim} will not power on"

    async def _plant_clinic_link_down(self) -> str:
        """One clinic's WAN link down (the simulator closes its ports): the first clinic
        with a link and a moved server of its own, else the first clinic with a link."""
        assert self.control is not None and self.inventory is not None
        clinics = [
            site.name
            for site in self.inventory.sites.values()
            if site.kind == "clinic" and site.links and site.name not in self.planted_on
        ]
        if not clinics:
            raise RehearsalStopped("no clinic with a WAN link to take down")
        busy = {s.site for s in self.moved if s.bmc is not None and s.name not in self.planted_on}
        clinic = next((c for c in clinics if c in busy), clinics[0])
        await self.control.call("POST", f"/sites/{clinic}/link", {"link_down": True})
        self._mark(CLINIC_LINK_DOWN, clinic)
        servers = [s.name for s in self.moved if s.site == clinic]
        return f"{clinic}'s WAN link is down ({len(servers)} moved server(s) there)"

    async def _plant_psu_unplugged(self) -> str:
        """One power supply of a moved server left without input: a server others depend
        on (storage first), with a BMC of its own (a blade's supplies are the enclosure's)."""
        assert self.control is not None and self.inventory is not None
        candidates = [
            s
            for s in self.moved
            if s.bmc is not None
            and s.bmc.system is None
            and s.name not in self.planted_on
            and self.inventory.dependents(s.name)
        ]
        for role in ("storage", "database", *sorted({s.role for s in candidates})):
            victim = next((s.name for s in candidates if s.role == role), None)
            if victim is not None:
                break
        else:
            raise RehearsalStopped("no moved server with dependents to unplug a supply of")
        bay = self.options.psu_unplugged_bay
        await self.control.set_faults([victim], {"psu_unplugged": bay})
        self._mark(PSU_UNPLUGGED, victim)
        return f"{victim}'s power supply in bay {bay} has no input"

    def _dead_on_arrival_victim(self) -> str:
        """A moved server nothing depends on, with a BMC of its own (a spare can take
        its place): a dead leaf costs its own service only, so the weekend goes on."""
        assert self.inventory is not None
        leaves = [
            s
            for s in self.moved
            if s.bmc is not None
            and s.bmc.system is None
            and not self.inventory.dependents(s.name)
            and s.name not in self.planted_on
        ]
        for role in ("web-viewer", "ris-integration", *sorted({s.role for s in leaves})):
            for server in leaves:
                if server.role == role:
                    return server.name
        raise RehearsalStopped("no moved server without dependents to plant dead on arrival")

    def _swap_pair(self) -> tuple[str, str]:
        """Two moved servers of the same role, the kind that get confused on a cart."""
        by_role: dict[str, list[str]] = {}
        for server in self.moved:
            if server.bmc is not None:
                by_role.setdefault(server.role, []).append(server.name)
        for role in ("web-viewer", "dicom-router", *sorted(by_role)):
            names = by_role.get(role, [])
            if len(names) >= 2:
                return names[-2], names[-1]
        raise RehearsalStopped("no two moved servers of one role to swap")
