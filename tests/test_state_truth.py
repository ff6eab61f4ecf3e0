"""State truth: a backed-off DOWN stays DOWN, and health changes are real ones.

The real scheduler, ``FleetState`` and roll-up run here with an in-process
probe that always fails (pure timing logic: no endpoint is needed to fail).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

from pacs_tui.inventory import Inventory, Server, Site
from pacs_tui.plugin_api import Health, Probe, ProbeResult
from pacs_tui.rollup import fleet_rollup
from pacs_tui.scheduler import Scheduler
from pacs_tui.state import FleetState
from pacs_tui_widgets.fleet_health import FleetHealth

NAMES = [f"bmc-{i}" for i in range(4)]


class AlwaysDown(Probe):
    """A BMC that never answers (connection refused at once)."""

    name = "power"
    interval_s = 0.05
    timeout_s = 0.05

    def __init__(self) -> None:
        self.polls: list[tuple[str, float]] = []

    def applies_to(self, server: Server) -> bool:
        return True

    def endpoint(self, server: Server) -> str:
        return f"bmc:{server.name}"

    async def probe(self, server: Server) -> ProbeResult:
        self.polls.append((server.name, time.monotonic()))
        await asyncio.sleep(0.002)
        return ProbeResult.make("down", Health.DOWN, detail="connection refused")


def inventory() -> Inventory:
    sites = {"dc": Site("dc", "datacenter")}
    servers = tuple(Server(name, "dc", "storage") for name in NAMES)
    return Inventory(Path("/truth.yaml"), sites, servers, {})


async def test_a_backed_off_down_server_stays_down_and_is_announced_once() -> None:
    inv = inventory()
    probe = AlwaysDown()
    state = FleetState(NAMES, {"power": probe.interval_s})
    scheduler = Scheduler(inv.servers, [probe], state, seed=7)  # the default backoff cap
    health = FleetHealth(NAMES)
    transitions: list[tuple[str, Health, Health]] = []
    seen: dict[str, list[Health]] = {n: [] for n in NAMES}
    task = asyncio.create_task(scheduler.run())
    began = time.monotonic()
    try:
        while time.monotonic() - began < 3.0:  # ~15 backed-off cycles of 0.2 s
            rollup = fleet_rollup(inv, state, lambda s: ("power",))
            for name in NAMES:
                seen[name].append(state.reading(name, "power").health)
            for server, (before, after) in health.absorb(rollup.health).items():
                transitions.append((server, before, after))
            await asyncio.sleep(0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # The scheduler did back off: later polls of one server are ~4 intervals apart.
    times = [t for n, t in probe.polls if n == NAMES[0]]
    assert len(times) >= 8
    gaps = [b - a for a, b in itertools.pairwise(times[-4:])]
    assert min(gaps) > 3 * probe.interval_s, gaps
    for name in NAMES:
        after_first = seen[name][seen[name].index(Health.DOWN) :]
        assert set(after_first) == {Health.DOWN}, f"{name} left DOWN: {set(after_first)}"
    # One notification per server: UNKNOWN -> DOWN, never DOWN <-> STALE.
    assert sorted(transitions) == [(n, Health.UNKNOWN, Health.DOWN) for n in NAMES]
    # The age of the DOWN reading is shown and grows between polls.
    reading = state.reading(NAMES[0], "power")
    assert reading.age_s is not None and reading.result is not None


async def test_a_reading_still_goes_stale_when_polling_stops() -> None:
    inv = inventory()
    probe = AlwaysDown()
    state = FleetState(NAMES, {"power": probe.interval_s})
    scheduler = Scheduler(inv.servers, [probe], state, seed=3)
    task = asyncio.create_task(scheduler.run())
    try:
        async with asyncio.timeout(5):
            while any(state.latest(n, "power") is None for n in NAMES):
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    stopped = time.time()
    assert state.reading(NAMES[0], "power").health is Health.DOWN
    # Due after at most the backoff cap (4 intervals + jitter) and the poll's
    # deadline (2 × timeout + 1 s), then one interval of grace.
    latest = 4 * 1.1 * probe.interval_s + (2 * probe.timeout_s + 1) + probe.interval_s
    later = stopped + latest + 0.01
    assert all(state.reading(n, "power", now=later).health is Health.STALE for n in NAMES)


def test_without_a_scheduler_expectation_three_intervals_make_a_reading_stale() -> None:
    state = FleetState(["a"], {"power": 2.0}, clock=lambda: 1000.0)
    state.record("a", "power", ProbeResult("Off", Health.DOWN, None, "", 1000.0))
    assert state.reading("a", "power", now=1005.9).health is Health.DOWN
    assert state.reading("a", "power", now=1006.1).health is Health.STALE
    # The scheduler said the next reading comes within 30 s (backoff): not overdue before.
    state.expect_next("a", "power", 30.0)
    assert state.reading("a", "power", now=1031.9).health is Health.DOWN
    assert state.reading("a", "power", now=1032.1).health is Health.STALE
    # A new result replaces the expectation.
    state.record("a", "power", ProbeResult("Off", Health.DOWN, None, "", 1040.0))
    assert state.reading("a", "power", now=1046.1).health is Health.STALE
