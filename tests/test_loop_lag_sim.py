"""A busy loop of ours is not a slow peer: real DICOM peers, our own loop blocked on purpose.

The simulator runs in its own process (loopback only), so its DICOM nodes
answer within milliseconds while this process's event loop is kept busy by a
CPU hog coroutine. Without the lag accounting each echo below measures over
its slow limit and would read DEGRADED "slow"; with it the reading is UNKNOWN
"measurement unreliable", and a sweep measures it again once the hog is done.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from pacs_tui.inventory import Inventory, Server, load_inventory
from pacs_tui.plugin_api import Health, ProbeContext, ProbeResult
from pacs_tui.scheduler import Scheduler
from pacs_tui.state import FleetState
from pacs_tui_dicom_echo.probe import DicomProbe
from sim_process import RunningSim, running_sim

SLOW_MS = 300.0  # the probe's limit in these tests (1000 by default)


def spin(seconds: float) -> None:
    """Keep the CPU, and so our event loop, busy without yielding."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    with running_sim(tmp_path_factory.mktemp("lag") / "dc", "--servers", "12") as running:
        yield running


def dicom_servers(sim: RunningSim) -> tuple[Inventory, list[Server]]:
    inventory = load_inventory(Path(sim.out) / "inventory.yaml")
    return inventory, [s for s in inventory.servers if s.dicom is not None]


class StartedProbe(DicomProbe):
    """The DICOM probe, telling when an echo is under way (so the hog can hold it up)."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()

    async def probe(self, server: Server) -> ProbeResult:
        self.started.set()  # the echo's connect is sent before this task yields
        return await super().probe(server)


async def opened_probe(inventory: Inventory) -> StartedProbe:
    probe = StartedProbe()
    settings = {"dicom_find": False, "dicom_slow_ms": SLOW_MS, "dicom_timeout_s": 5}
    await probe.open(ProbeContext(inventory, settings))
    return probe


async def stall(probe: StartedProbe, seconds: float) -> None:
    """One long stall of our loop, as a burst of handshakes or a big C-FIND would cause."""
    await probe.started.wait()
    spin(seconds)


async def congest(probe: StartedProbe, slices: int, each_s: float) -> None:
    """Many short stalls: a loop that runs, but late, the first sweep's usual state."""
    await probe.started.wait()
    for _ in range(slices):
        spin(each_s)
        await asyncio.sleep(0)


async def test_the_peer_answers_fast_when_our_loop_is_idle(sim: RunningSim) -> None:
    inventory, servers = dicom_servers(sim)
    probe = await opened_probe(inventory)
    result = await probe.probe(servers[0])
    assert result.health is Health.OK, result.detail
    assert result.latency_ms is not None and result.latency_ms < SLOW_MS
    assert not result.measurement_unreliable


Hog = Callable[[StartedProbe], Awaitable[None]]


@pytest.mark.parametrize(
    "hog",
    [lambda p: stall(p, 1.0), lambda p: congest(p, 25, 0.08)],
    ids=["stall", "congested"],
)
async def test_an_echo_our_loop_held_up_is_unreliable_never_slow(sim: RunningSim, hog: Hog) -> None:
    inventory, servers = dicom_servers(sim)
    probe = await opened_probe(inventory)
    echo = asyncio.create_task(probe.probe(servers[0]))
    await hog(probe)  # our loop is held up while the echo is under way
    result = await echo
    # The test bites: the echo as measured is over the limit...
    assert result.latency_ms is not None and result.latency_ms > SLOW_MS, result.detail
    # ...but that is our loop's doing, not the peer's.
    assert result.health is not Health.DEGRADED, result.detail
    assert result.health is Health.UNKNOWN
    assert result.state == "ok"  # the peer did answer the C-ECHO
    assert result.measurement_unreliable
    assert "measurement unreliable: event loop" in result.detail
    assert result.facts["loop_lag_ms"] >= result.latency_ms - SLOW_MS


async def test_a_sweep_with_our_loop_held_up_ends_with_every_peer_ok(sim: RunningSim) -> None:
    inventory, servers = dicom_servers(sim)
    probe = await opened_probe(inventory)
    state = FleetState([s.name for s in servers], {probe.name: probe.interval_s})
    scheduler = Scheduler(servers, [probe], state, seed=2)
    hog = asyncio.create_task(stall(probe, 0.8))
    await scheduler.sweep()
    await hog
    readings = {s.name: state.reading(s.name, "dicom") for s in servers}
    assert all(r.health is Health.OK for r in readings.values()), {
        n: r.result.detail if r.result else None for n, r in readings.items()
    }
    assert scheduler.remeasured >= 1  # the held-up echoes were measured again, not believed


async def test_the_c_find_is_kept_off_the_first_sweep_and_run_at_its_end(sim: RunningSim) -> None:
    inventory, servers = dicom_servers(sim)
    probe = StartedProbe()
    await probe.open(ProbeContext(inventory, {}))  # C-FIND on archives and image managers
    finders = [s for s in servers if probe.settings.finds_on(s)]
    assert finders
    seen: list[tuple[str, ProbeResult]] = []
    original = probe.probe

    async def recorded(server: Server) -> ProbeResult:
        result = await original(server)
        seen.append((server.name, result))
        return result

    probe.probe = recorded  # type: ignore[method-assign]
    state = FleetState([s.name for s in servers], {probe.name: probe.interval_s})
    scheduler = Scheduler(servers, [probe], state, seed=4)
    await scheduler.sweep()
    first = {name: r for name, r in reversed(seen)}  # each server's first reading
    for server in finders:
        early = first[server.name]
        assert early.wants_follow_up and early.health is Health.UNKNOWN, early.detail
        assert "C-FIND not run yet (kept off the first sweep)" in early.detail
        assert "find_count" not in early.facts
        final = state.reading(server.name, "dicom")
        assert final.health is Health.OK and final.result is not None, final.result
        assert final.result.facts["find_state"] == "ok" and final.result.facts["find_count"] > 0
    assert scheduler.followed_up == len(finders)
    assert all(not first[s.name].wants_follow_up for s in servers if s not in finders)
    # Called directly (no scheduler, no first sweep), the first poll queries at once.
    direct = DicomProbe()
    await direct.open(ProbeContext(inventory, {}))
    at_once = await direct.probe(finders[0])
    assert at_once.health is Health.OK and at_once.facts["find_state"] == "ok"
