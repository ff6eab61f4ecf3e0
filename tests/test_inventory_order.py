"""Power-on and power-off waves derived from the inventory's dependencies."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pacs_tui.inventory import Inventory, Server, Site


def server(name: str, *deps: str, site: str = "dc") -> Server:
    return Server(name=name, site=site, role="database", depends_on=deps)


def inventory_of(servers: list[Server]) -> Inventory:
    sites = {n: Site(n, "datacenter") for n in ("dc", "st-mary")}
    return Inventory(path=Path("t.yaml"), sites=sites, servers=tuple(servers), credentials={})


def names(waves: list[tuple[Server, ...]]) -> list[list[str]]:
    return [[s.name for s in wave] for wave in waves]


@pytest.fixture
def fleet() -> Inventory:
    return inventory_of(
        [
            server("stor-01"),
            server("db-01", "stor-01"),
            server("arch-01", "db-01", "stor-01"),
            server("router-01", "arch-01"),
            server("viewer-01", "arch-01", "db-01"),
            server("monitor-01", "stor-01"),
            server("gw-stmary", "router-01", site="st-mary"),
        ]
    )


def test_startup_waves_put_dependencies_first(fleet: Inventory) -> None:
    assert names(fleet.startup_waves()) == [
        ["stor-01"],
        ["db-01", "monitor-01"],
        ["arch-01"],
        ["router-01", "viewer-01"],
        ["gw-stmary"],
    ]


def test_shutdown_waves_stop_dependents_first_and_leaves_early(fleet: Inventory) -> None:
    # monitor-01 has no dependents: it goes in the first wave, not just before stor-01.
    assert names(fleet.shutdown_waves()) == [
        ["viewer-01", "monitor-01", "gw-stmary"],
        ["router-01"],
        ["arch-01"],
        ["db-01"],
        ["stor-01"],
    ]


def test_waves_of_a_selection_ignore_servers_outside_it(fleet: Inventory) -> None:
    chosen = ["arch-01", "viewer-01", "gw-stmary"]
    assert names(fleet.startup_waves(chosen)) == [["arch-01", "gw-stmary"], ["viewer-01"]]
    assert names(fleet.shutdown_waves(["db-01", "stor-01"])) == [["db-01"], ["stor-01"]]
    with pytest.raises(KeyError, match="nope"):
        fleet.startup_waves(["nope"])


def test_fleet_refuses_inconsistent_servers() -> None:
    with pytest.raises(ValueError, match="unique"):
        inventory_of([server("a"), server("a")])
    with pytest.raises(ValueError, match="unknown server 'b'"):
        inventory_of([server("a", "b")])


def test_a_cycle_built_by_hand_is_caught() -> None:
    with pytest.raises(ValueError, match="cycle"):
        inventory_of([server("a", "b"), server("b", "a")]).startup_waves()


def test_random_dags_respect_order_in_both_directions() -> None:
    rng = random.Random(7)
    servers = []
    for i in range(300):
        deps = {f"s{j}" for j in rng.sample(range(i), min(i, rng.randint(0, 3)))}
        servers.append(server(f"s{i}", *sorted(deps)))
    rng.shuffle(servers)  # file order must not matter for correctness
    fleet = inventory_of(servers)
    for waves, must_precede in (
        (fleet.startup_waves(), lambda s: s.depends_on),
        (fleet.shutdown_waves(), lambda s: [d.name for d in fleet.dependents(s.name)]),
    ):
        wave_of = {s.name: i for i, wave in enumerate(waves) for s in wave}
        assert len(wave_of) == 300
        for s in fleet:
            earlier = [wave_of[u] for u in must_precede(s)]
            assert all(w < wave_of[s.name] for w in earlier)
            # As early as possible: a server sits right after its latest prerequisite.
            assert wave_of[s.name] == (max(earlier) + 1 if earlier else 0)
