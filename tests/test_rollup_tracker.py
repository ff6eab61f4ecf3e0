"""The kept roll-up (``RollupTracker``) equals a full ``fleet_rollup`` at every step.

Random histories (seeded, so a failure replays): results of every health and
power word, expectations, restored readings with their change logs, flapping
units, time steps short and long (readings turn STALE with no news, flaps
start and end with the clock), now and then a clock that goes back.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pacs_tui.flapping import FLAP_WINDOW_S, HealthChange
from pacs_tui.inventory import Inventory, Server, Site
from pacs_tui.plugin_api import Health, ProbeResult
from pacs_tui.rollup import FleetRollup, fleet_rollup
from pacs_tui.rollup_tracker import RollupTracker
from pacs_tui.state import FleetState

START = 1_750_000_000.0
PROBES = ("power", "network", "dicom", "ssh", "rack-power")
INTERVALS = {"power": 5.0, "network": 2.0, "dicom": 10.0, "ssh": 1.0, "rack-power": 30.0}
HEALTHS = (Health.OK, Health.OK, Health.OK, Health.DEGRADED, Health.DOWN, Health.UNREACHABLE)
POWER_WORDS = ("On", "On", "Off", "PoweringOn", "Unknown")


def random_inventory(rng: random.Random, servers: int) -> Inventory:
    """A data center, hospitals and clinics; edge servers depend on earlier ones."""
    sites = {
        "dc": Site("dc", "datacenter"),
        "hosp-a": Site("hosp-a", "hospital"),
        "hosp-b": Site("hosp-b", "hospital"),
        "clinic-c": Site("clinic-c", "clinic"),
    }
    made: list[Server] = []
    for i in range(servers):
        site = rng.choice(list(sites))
        earlier = [s.name for s in made]
        depends = tuple(rng.sample(earlier, k=min(len(earlier), rng.choice((0, 0, 1, 2)))))
        role = rng.choice(("archive", "router", "gateway"))
        made.append(Server(f"srv-{i:02d}", site, role, depends_on=depends))
    return Inventory(Path("/random.yaml"), sites, tuple(made), {})


def random_applicable(rng: random.Random, inventory: Inventory) -> dict[str, tuple[str, ...]]:
    """Every probe, power alone, no power, or none at all."""
    choices = (PROBES, PROBES, ("power",), ("network", "dicom"), ("power", "ssh"),
               ("power", "rack-power", "ssh"), ())  # fmt: skip
    return {s.name: rng.choice(choices) for s in inventory.servers}


def result(rng: random.Random, probe: str, at: float, health: Health | None = None) -> ProbeResult:
    health = rng.choice(HEALTHS) if health is None else health
    word = rng.choice(POWER_WORDS) if probe == "power" else str(health)
    return ProbeResult(word, health, rng.random() * 20, rng.choice(("", "why")), at)


def assert_same(kept: FleetRollup, full: FleetRollup) -> None:
    assert kept == full
    # Orders matter too: the bar and the wall list them as they come.
    assert list(kept.by_site) == list(full.by_site)
    assert list(kept.by_role) == list(full.by_role)
    assert list(kept.health) == list(full.health)
    assert list(kept.management) == list(full.management)
    assert list(kept.flapping) == list(full.flapping)


@pytest.mark.parametrize("seed", range(20))
def test_kept_rollup_equals_the_full_one_at_every_step(seed: int) -> None:
    rng = random.Random(seed)
    inventory = random_inventory(rng, rng.choice((6, 15, 30)))
    names = inventory.names()
    applicable = random_applicable(rng, inventory)
    clock = [START]
    state = FleetState(names, INTERVALS, clock=lambda: clock[0])
    tracker = RollupTracker(inventory, state, lambda s: applicable[s.name])
    flappers = rng.sample(names, k=min(3, len(names)))
    flaps_seen = stale_seen = management_seen = 0
    for _step in range(250):
        for _ in range(rng.randint(0, 6)):
            action = rng.random()
            server, probe = rng.choice(names), rng.choice(PROBES)
            if action < 0.55:
                age = rng.choice((0.0, 0.0, rng.random() * 5, rng.random() * 40, -2.0))
                state.record(server, probe, result(rng, probe, clock[0] - age))
            elif action < 0.75:
                # A flapping unit: OK and bad in turn, a change every poll.
                server, probe = rng.choice(flappers), rng.choice(("ssh", "ssh", "power"))
                previous = state.latest(server, probe)
                bad = previous is None or previous.health is Health.OK
                health = rng.choice((Health.DEGRADED, Health.DOWN)) if bad else Health.OK
                state.record(server, probe, result(rng, probe, clock[0], health))
            elif action < 0.8:
                # A silent BMC on a serving server (counted under management).
                state.record(server, "power", result(rng, "power", clock[0], Health.UNREACHABLE))
                for other in PROBES[1:]:
                    state.record(server, other, result(rng, other, clock[0], Health.OK))
            elif action < 0.9:
                state.expect_next(server, probe, rng.choice((0.5, 3.0, 12.0, 60.0)))
            else:
                at = clock[0] - rng.random() * 30
                changes = [
                    HealthChange(at - 10 + i * 2, Health.OK, Health.DEGRADED, "x")
                    if i % 2 == 0
                    else HealthChange(at - 10 + i * 2, Health.DEGRADED, Health.OK, "")
                    for i in range(rng.choice((0, 2, 5)))
                ]
                state.restore(
                    server,
                    probe,
                    result(rng, probe, at),
                    due_s=rng.choice((None, 4.0, 30.0)),
                    changes=changes,
                )
        step = rng.random()
        if step < 0.6:
            clock[0] += rng.random() * 3
        elif step < 0.85:
            clock[0] += rng.random() * 40
        elif step < 0.95:
            clock[0] += FLAP_WINDOW_S * rng.random() * 1.5
        else:
            clock[0] -= rng.random() * 5  # a clock set back
        kept = tracker.rollup()
        full = fleet_rollup(inventory, state, lambda s: applicable[s.name])
        assert_same(kept, full)
        flaps_seen += bool(full.flapping)
        stale_seen += full.stale_readings > 0
        management_seen += bool(full.management)
    # The histories did reach the time-driven cases, and silent BMCs.
    assert flaps_seen and stale_seen and management_seen
    tracker.close()


def test_a_reading_turns_stale_on_time_without_news() -> None:
    inventory = random_inventory(random.Random(1), 5)
    clock = [START]
    state = FleetState(inventory.names(), {"power": 5.0}, clock=lambda: clock[0])
    tracker = RollupTracker(inventory, state, lambda s: ("power",))
    for name in inventory.names():
        state.record(name, "power", ProbeResult("On", Health.OK, 1.0, "", START))
    assert tracker.rollup().fleet[Health.OK] == 5
    clock[0] += 15.0  # exactly 3 intervals: not yet overdue
    assert tracker.rollup().fleet[Health.OK] == 5
    clock[0] += 0.01
    rollup = tracker.rollup()
    assert rollup.fleet[Health.STALE] == 5
    assert rollup == fleet_rollup(inventory, state, lambda s: ("power",))


def test_only_servers_with_news_or_due_are_read_again() -> None:
    inventory = random_inventory(random.Random(2), 30)
    clock = [START]
    state = FleetState(inventory.names(), {"power": 5.0}, clock=lambda: clock[0])
    tracker = RollupTracker(inventory, state, lambda s: ("power",))
    for name in inventory.names():
        state.record(name, "power", ProbeResult("On", Health.OK, 1.0, "", START))
    tracker.rollup()
    assert tracker.reread == 30
    clock[0] += 1.0
    state.record("srv-03", "power", ProbeResult("On", Health.OK, 1.0, "", clock[0]))
    state.expect_next("srv-04", "power", 5.0)
    tracker.rollup()
    assert tracker.reread == 2
    clock[0] += 1.0
    tracker.rollup()
    assert tracker.reread == 0
