"""Fleet roll-up: per-server health, counts, down lists, data age and affected sites."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from pacs_tui.inventory import Inventory, Server, Site, load_inventory
from pacs_tui.plugin_api import Health, Probe, ProbeResult
from pacs_tui.rollup import (
    HealthCounts,
    ServiceLevel,
    applicable_probes,
    fleet_rollup,
    format_counts,
    server_health,
    upstream_of,
)
from pacs_tui.sim.datacenter import SimOptions, SimulatedDataCenter, render_inventory
from pacs_tui.sim.fleet import SimFleet
from pacs_tui.state import FleetState

NOW = 1_700_000_000.0
PROBES = ("power", "network", "dicom")
INTERVALS = {"power": 5.0, "network": 2.0, "dicom": 10.0}


def hand_inventory(path: Path = Path("/hand.yaml")) -> Inventory:
    """A tiny group: one data center, a hospital with two gateways, two clinics."""
    sites = {
        "dc": Site("dc", "datacenter"),
        "hosp-a": Site("hosp-a", "hospital"),
        "clinic-b": Site("clinic-b", "clinic"),
        "clinic-c": Site("clinic-c", "clinic"),
    }
    servers = (
        Server("stor-1", "dc", "storage"),
        Server("db-1", "dc", "database", depends_on=("stor-1",)),
        Server("img-1", "dc", "image-manager", depends_on=("db-1",)),
        Server("rtr-1", "dc", "dicom-router", depends_on=("img-1",)),
        Server("rtr-2", "dc", "dicom-router", depends_on=("img-1",)),
        Server("gw-a-1", "hosp-a", "edge-gateway", depends_on=("rtr-1",)),
        Server("gw-a-2", "hosp-a", "edge-gateway", depends_on=("rtr-2",)),
        Server("gw-b-1", "clinic-b", "edge-gateway", depends_on=("rtr-2",)),
        Server("gw-c-1", "clinic-c", "edge-gateway", depends_on=("rtr-1",)),
    )
    return Inventory(path, sites, servers, {})


def all_probes(server: Server) -> tuple[str, ...]:
    return PROBES


def healthy_state(inventory: Inventory, age_s: float = 1.0) -> FleetState:
    state = FleetState(inventory.names(), INTERVALS, clock=lambda: NOW)
    for name in inventory.names():
        record(state, name, "power", "On", Health.OK, age_s)
        record(state, name, "network", "ok", Health.OK, age_s)
        record(state, name, "dicom", "ok", Health.OK, age_s)
    return state


def record(
    state: FleetState, server: str, probe: str, word: str, health: Health, age_s: float = 1.0
) -> None:
    state.record(server, probe, ProbeResult(word, health, 1.0, "", NOW - age_s))


# -- per-server health ----------------------------------------------------------


def test_server_health_is_the_worst_applicable_reading() -> None:
    inventory = hand_inventory()
    state = healthy_state(inventory)
    server = inventory.server("db-1")
    assert server_health(server, state, PROBES) is Health.OK
    record(state, "db-1", "dicom", "slow", Health.DEGRADED)
    assert server_health(server, state, PROBES) is Health.DEGRADED
    record(state, "db-1", "network", "refused", Health.DOWN)
    assert server_health(server, state, PROBES) is Health.DOWN
    # A probe that does not apply to the server is ignored, however bad.
    assert server_health(server, state, ("power",)) is Health.OK


def test_power_off_counts_as_down_even_when_the_probe_calls_it_ok() -> None:
    inventory = hand_inventory()
    state = healthy_state(inventory)
    record(state, "img-1", "power", "Off", Health.OK)
    assert server_health(inventory.server("img-1"), state, PROBES) is Health.DOWN
    record(state, "img-1", "power", "PoweringOn", Health.DEGRADED)
    assert server_health(inventory.server("img-1"), state, PROBES) is Health.DEGRADED


def test_unread_and_stale_servers() -> None:
    inventory = hand_inventory()
    state = FleetState(inventory.names(), INTERVALS, clock=lambda: NOW)
    server = inventory.server("rtr-1")
    assert server_health(server, state, PROBES) is Health.UNKNOWN
    assert server_health(server, state, ()) is Health.UNKNOWN
    # Older than 3 intervals: STALE, and an old "Off" no longer counts as DOWN.
    record(state, "rtr-1", "power", "Off", Health.OK, age_s=16.0)
    assert server_health(server, state, ("power",)) is Health.STALE


# -- counts and lines -------------------------------------------------------------


def test_summary_line_format() -> None:
    counts = HealthCounts({Health.OK: 212, Health.DEGRADED: 3, Health.DOWN: 1})
    assert counts.line("dc-main") == "dc-main 212 up · 3 degraded · 1 down"
    assert counts.total == 216
    assert format_counts(HealthCounts()) == "0 up"
    assert (
        format_counts(HealthCounts({Health.STALE: 2, Health.UNKNOWN: 1, Health.UNREACHABLE: 4}))
        == "0 up · 4 unreachable · 2 stale · 1 unknown"
    )


def test_fleet_rollup_counts_per_fleet_site_and_role() -> None:
    inventory = hand_inventory()
    state = healthy_state(inventory)
    record(state, "rtr-1", "network", "refused", Health.DOWN)
    record(state, "gw-c-1", "network", "unreachable", Health.UNREACHABLE)
    record(state, "gw-a-1", "network", "unreachable", Health.UNREACHABLE)
    record(state, "db-1", "dicom", "slow", Health.DEGRADED)
    rollup = fleet_rollup(inventory, state, all_probes)
    assert rollup.now == NOW  # the state's clock carries through
    assert rollup.fleet.counts == {
        Health.OK: 5,
        Health.DOWN: 1,
        Health.UNREACHABLE: 2,
        Health.DEGRADED: 1,
    }
    assert list(rollup.by_site) == ["dc", "hosp-a", "clinic-b", "clinic-c"]
    assert rollup.site_line("dc") == "dc 3 up · 1 degraded · 1 down"
    assert rollup.site_line("hosp-a") == "hosp-a 1 up · 1 unreachable"
    assert rollup.role_line("dicom-router") == "dicom-router 1 up · 1 down"
    assert rollup.role_line("edge-gateway") == "edge-gateway 2 up · 2 unreachable"
    assert rollup.down == ("rtr-1",)
    assert rollup.unreachable == ("gw-a-1", "gw-c-1")


def test_reading_ages_for_the_stalled_data_warning() -> None:
    inventory = hand_inventory()
    state = healthy_state(inventory, age_s=2.0)
    record(state, "stor-1", "dicom", "ok", Health.OK, age_s=45.0)  # > 3 × 10 s: stale
    record(state, "db-1", "network", "ok", Health.OK, age_s=0.5)
    rollup = fleet_rollup(inventory, state, all_probes)
    assert rollup.oldest_age_s == 45.0
    assert rollup.newest_age_s == 0.5
    assert rollup.stale_readings == 1
    assert rollup.health["stor-1"] is Health.STALE
    # A later "now": everything has aged by the same amount.
    later = fleet_rollup(inventory, state, all_probes, now=NOW + 30)
    assert later.newest_age_s == 30.5
    empty = fleet_rollup(inventory, FleetState(inventory.names(), INTERVALS), all_probes)
    assert empty.oldest_age_s is None and empty.newest_age_s is None
    assert empty.fleet.counts == {Health.UNKNOWN: 9}


# -- affected sites ---------------------------------------------------------------


def affected(rollup_sites: Iterable[object]) -> dict[str, tuple[str, str]]:
    return {a.site: (a.level.value, a.reason) for a in rollup_sites}  # type: ignore[attr-defined]


def test_a_down_router_degrades_one_hospital_and_cuts_off_one_clinic() -> None:
    inventory = hand_inventory()
    state = healthy_state(inventory)
    record(state, "rtr-1", "network", "refused", Health.DOWN)
    record(state, "gw-a-1", "network", "unreachable", Health.UNREACHABLE)
    rollup = fleet_rollup(inventory, state, all_probes)
    assert affected(rollup.affected) == {
        "clinic-c": ("no service", "gw-c-1 behind rtr-1"),
        "hosp-a": ("degraded", "gw-a-1 behind rtr-1"),
    }
    # No service sorts before degraded; the data center is never listed.
    assert [a.site for a in rollup.affected] == ["clinic-c", "hosp-a"]
    hosp = rollup.affected[1]
    assert hosp.culprits == ("rtr-1",) and hosp.servers == 2 and hosp.kind == "hospital"


def test_a_down_database_takes_every_site_through_the_chain() -> None:
    inventory = hand_inventory()
    state = healthy_state(inventory)
    record(state, "db-1", "power", "Off", Health.OK)
    record(state, "stor-1", "network", "refused", Health.DOWN)
    rollup = fleet_rollup(inventory, state, all_probes)
    assert {a.site for a in rollup.affected} == {"hosp-a", "clinic-b", "clinic-c"}
    assert all(a.level is ServiceLevel.NONE for a in rollup.affected)
    # The nearest down server is named: db-1 (off), not stor-1 behind it.
    assert all(a.culprits == ("db-1",) for a in rollup.affected)
    assert rollup.down == ("stor-1", "db-1")


def test_a_sites_own_down_server_and_an_unexplained_unreachable_one() -> None:
    inventory = hand_inventory()
    state = healthy_state(inventory)
    record(state, "gw-b-1", "network", "refused", Health.DOWN)
    record(state, "gw-a-2", "network", "unreachable", Health.UNREACHABLE)
    rollup = fleet_rollup(inventory, state, all_probes)
    assert affected(rollup.affected) == {
        "clinic-b": ("no service", "gw-b-1 down"),
        "hosp-a": ("degraded", "gw-a-2 down"),
    }


def test_degraded_or_stale_servers_do_not_make_a_site_affected() -> None:
    inventory = hand_inventory()
    state = healthy_state(inventory)
    record(state, "rtr-2", "dicom", "slow", Health.DEGRADED)
    record(state, "rtr-1", "dicom", "ok", Health.OK, age_s=100.0)
    assert fleet_rollup(inventory, state, all_probes).affected == ()


def test_a_dependency_cycle_is_cut_rather_than_looping() -> None:
    sites = {"dc": Site("dc", "datacenter"), "c": Site("c", "clinic")}
    servers = (
        Server("a", "dc", "storage", depends_on=("b",)),
        Server("b", "dc", "storage", depends_on=("a",)),
        Server("gw", "c", "edge-gateway", depends_on=("a",)),
    )
    inventory = Inventory(Path("/cycle.yaml"), sites, servers, {})
    state = healthy_state(inventory)
    record(state, "b", "network", "refused", Health.DOWN)
    rollup = fleet_rollup(inventory, state, all_probes)
    assert [a.culprits for a in rollup.affected] == [("b",)]


# -- helpers ----------------------------------------------------------------------


class CountingProbe(Probe):
    name = "dicom"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def applies_to(self, server: Server) -> bool:
        self.asked.append(server.name)
        return server.role != "storage"

    async def probe(self, server: Server) -> ProbeResult:
        raise AssertionError("never polled here")


def test_applicable_probes_asks_each_server_once() -> None:
    inventory = hand_inventory()
    probe = CountingProbe()
    applicable = applicable_probes([probe])
    assert applicable(inventory.server("stor-1")) == ()
    assert applicable(inventory.server("db-1")) == ("dicom",)
    assert applicable(inventory.server("db-1")) == ("dicom",)
    assert probe.asked == ["stor-1", "db-1"]


def test_upstream_of_follows_dependencies_transitively() -> None:
    inventory = hand_inventory()
    assert upstream_of(inventory, ["gw-a-1"]) == ["stor-1", "db-1", "img-1", "rtr-1"]
    assert upstream_of(inventory, ["stor-1"]) == []


# -- on the simulator's fleet -----------------------------------------------------


def sim_inventory(folder: Path, servers: int = 300) -> tuple[SimFleet, Inventory]:
    """The simulator's fleet and the inventory file it renders for clients."""
    center = SimulatedDataCenter(SimOptions(servers=servers, tls=False))
    paths = center.write_client_files(folder)
    inventory = load_inventory(paths["inventory"])
    assert paths["inventory"].read_text() == render_inventory(center)
    return center.fleet, inventory


def test_simulated_fleet_router_outage_hits_exactly_the_sites_behind_it(tmp_path: Path) -> None:
    fleet, inventory = sim_inventory(tmp_path)
    state = healthy_state(inventory)
    router = next(s.name for s in fleet.servers if s.role == "dicom-router")
    record(state, router, "network", "refused", Health.DOWN)
    rollup = fleet_rollup(inventory, state, all_probes)

    # Expected, straight from the simulator's own fleet description.
    gateways_behind = {s.name for s in fleet.servers if router in s.depends_on}
    assert gateways_behind, "the first router serves at least one gateway"
    expected: dict[str, str] = {}
    for site, kind in fleet.sites:
        if kind not in ("hospital", "clinic"):
            continue
        at_site = {s.name for s in fleet.servers if s.site == site}
        hit = at_site & gateways_behind
        if hit:
            expected[site] = "no service" if hit == at_site else "degraded"
    assert {a.site: a.level.value for a in rollup.affected} == expected
    assert all(a.culprits == (router,) for a in rollup.affected)
    assert rollup.down == (router,)
    assert rollup.fleet[Health.OK] == 299
    assert rollup.site_line("dc-main").startswith("dc-main ")
    assert rollup.by_site["dc-main"][Health.DOWN] == 1


def test_simulated_storage_outage_and_rollup_cost_at_3000_servers(tmp_path: Path) -> None:
    fleet, inventory = sim_inventory(tmp_path, 3000)
    state = healthy_state(inventory)
    storage = [s.name for s in fleet.servers if s.role == "storage" and s.site == "dc-main"]
    for name in storage:
        record(state, name, "network", "refused", Health.DOWN)
    began = time.process_time()
    rollup = fleet_rollup(inventory, state, all_probes)
    spent = time.process_time() - began
    served = {site for site, kind in fleet.sites if kind in ("hospital", "clinic")}
    assert {a.site for a in rollup.affected} == served
    assert all(a.level is ServiceLevel.NONE for a in rollup.affected)
    assert set(rollup.down) == set(storage)
    # Recomputed every second by the wall: it must stay well under that.
    assert spent < 0.5, f"fleet_rollup took {spent:.3f} s CPU for 3 000 servers"
