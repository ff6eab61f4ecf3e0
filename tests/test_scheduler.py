"""Scheduler and FleetState logic with in-process fake probes (pure logic, no network)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from pacs_tui.plugin_api import Health, Probe, ProbeResult
from pacs_tui.scheduler import ConcurrencyCaps, Scheduler
from pacs_tui.state import FleetState


@dataclass(frozen=True)
class Box:
    name: str
    depends_on: tuple[str, ...] = ()


class CountingProbe(Probe):
    """Records concurrency; health per server comes from a dict."""

    name = "network"
    interval_s = 0.05
    timeout_s = 0.5

    def __init__(self, health: dict[str, Health] | None = None, delay: float = 0.01) -> None:
        self.health = health or {}
        self.delay = delay
        self.calls: list[str] = []
        self.running: dict[str, int] = {}
        self.max_running_per_server: dict[str, int] = {}

    def applies_to(self, server: Box) -> bool:  # type: ignore[override]
        return True

    def endpoint(self, server: Box) -> str:  # type: ignore[override]
        return f"bmc:{server.name}"

    async def probe(self, server: Box) -> ProbeResult:  # type: ignore[override]
        self.calls.append(server.name)
        now = self.running.get(server.name, 0) + 1
        self.running[server.name] = now
        self.max_running_per_server[server.name] = max(
            self.max_running_per_server.get(server.name, 0), now
        )
        await asyncio.sleep(self.delay)
        self.running[server.name] -= 1
        health = self.health.get(server.name, Health.OK)
        return ProbeResult.make(str(health), health, latency_ms=1.0)


class BrokenProbe(Probe):
    name = "dicom"
    interval_s = 1.0

    def applies_to(self, server: Box) -> bool:  # type: ignore[override]
        return True

    async def probe(self, server: Box) -> ProbeResult:  # type: ignore[override]
        raise RuntimeError("plugin bug")


def make(servers: list[Box], probes: list[Probe], **kw: object) -> tuple[Scheduler, FleetState]:
    state = FleetState([s.name for s in servers], {p.name: p.interval_s for p in probes})
    return Scheduler(servers, probes, state, seed=1, **kw), state  # type: ignore[arg-type]


async def test_sweep_respects_total_and_per_endpoint_caps() -> None:
    servers = [Box(f"s{i}") for i in range(40)]
    probe = CountingProbe(delay=0.02)
    scheduler, state = make(servers, [probe], caps=ConcurrencyCaps(total=8, per_bmc=1))
    await scheduler.sweep()
    assert sorted(probe.calls) == sorted(s.name for s in servers)
    assert scheduler.peak_in_flight == 8
    assert max(scheduler.peak_per_endpoint.values()) == 1
    assert all(state.reading(s.name, "network").health is Health.OK for s in servers)


async def test_a_broken_probe_is_unknown_not_fatal() -> None:
    scheduler, state = make([Box("a")], [CountingProbe(), BrokenProbe()])
    await scheduler.sweep()
    reading = state.reading("a", "dicom")
    assert reading.health is Health.UNKNOWN
    assert "plugin bug" in reading.result.detail  # type: ignore[union-attr]
    assert state.reading("a", "network").health is Health.OK


async def test_server_behind_a_down_parent_is_unreachable() -> None:
    servers = [Box("switch"), Box("db", ("switch",)), Box("app", ("db",)), Box("other")]
    health = {"switch": Health.DOWN, "db": Health.DOWN, "app": Health.DOWN, "other": Health.DOWN}
    scheduler, state = make(servers, [CountingProbe(health)])
    await scheduler.sweep()
    assert state.reading("switch", "network").health is Health.DOWN
    assert state.reading("db", "network").health is Health.UNREACHABLE
    assert state.reading("app", "network").health is Health.UNREACHABLE
    assert "behind db" in state.reading("app", "network").result.detail  # type: ignore[union-attr]
    assert state.reading("other", "network").health is Health.DOWN


class OffPowerProbe(Probe):
    """A BMC that answers: PowerState Off (an answer, not a failure)."""

    name = "power"
    interval_s = 1.0

    def applies_to(self, server: Box) -> bool:  # type: ignore[override]
        return True

    async def probe(self, server: Box) -> ProbeResult:  # type: ignore[override]
        return ProbeResult.make("Off", Health.DOWN, detail="powered off", endpoint_answered=True)


async def test_an_answered_off_behind_a_down_parent_stays_off() -> None:
    # A whole rack switched off: the parent's network is down, yet each BMC still
    # answers "Off". A power-on plan must read Off there, never "unreachable".
    servers = [Box("db"), Box("app", ("db",))]
    scheduler, state = make(servers, [CountingProbe({"db": Health.DOWN, "app": Health.DOWN}),
                                      OffPowerProbe()])  # fmt: skip
    await scheduler.sweep()
    assert state.reading("app", "network").health is Health.UNREACHABLE  # no answer: not judged
    power = state.reading("app", "power")
    assert power.health is Health.DOWN and power.result is not None
    assert power.result.state == "Off"


def test_backoff_doubles_for_failures_and_is_capped() -> None:
    probe = CountingProbe()
    scheduler, _ = make([Box("a")], [probe], jitter=0.0, max_backoff_s=0.3)
    assert scheduler.next_delay("a", probe) == pytest.approx(0.05)
    scheduler._failures[("a", "network")] = 2
    assert scheduler.next_delay("a", probe) == pytest.approx(0.2)
    scheduler._failures[("a", "network")] = 6
    assert scheduler.next_delay("a", probe) == pytest.approx(0.3)


def test_jitter_stays_in_band() -> None:
    probe = CountingProbe()
    scheduler, _ = make([Box("a")], [probe], jitter=0.2)
    delays = [scheduler.next_delay("a", probe) for _ in range(200)]
    assert min(delays) >= 0.04 and max(delays) <= 0.06
    assert max(delays) - min(delays) > 0.01


async def test_continuous_polls_never_overlap_for_one_server() -> None:
    servers = [Box(f"s{i}") for i in range(5)]
    probe = CountingProbe(delay=0.08)  # slower than the interval
    scheduler, _ = make(servers, [probe])
    task = asyncio.create_task(scheduler.run())
    try:
        async with asyncio.timeout(5):
            while min((probe.calls.count(s.name) for s in servers), default=0) < 3:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert max(probe.max_running_per_server.values()) == 1


async def test_results_go_stale_after_three_intervals() -> None:
    clock = [1000.0]
    state = FleetState(["a"], {"network": 2.0}, clock=lambda: clock[0])
    state.record("a", "network", ProbeResult("ok", Health.OK, 1.0, "", 1000.0))
    clock[0] = 1005.0
    assert state.reading("a", "network").health is Health.OK
    clock[0] = 1006.5
    reading = state.reading("a", "network")
    assert reading.health is Health.STALE and reading.state == "stale"
    assert reading.age_s == pytest.approx(6.5)


async def test_change_feed_coalesces_a_flapping_server() -> None:
    state = FleetState(["a", "b"], {"network": 1.0})
    feed = state.subscribe()
    for i in range(500):
        health = Health.OK if i % 2 else Health.DOWN
        state.record("a", "network", ProbeResult.make(str(health), health))
    state.record("b", "network", ProbeResult.make("ok", Health.OK))
    assert await feed.next(timeout=1) == {("a", "network"), ("b", "network")}
    assert await feed.next(timeout=0.05) == set()
    # Same reading again: nothing to redraw.
    state.record("b", "network", state.latest("b", "network"))  # type: ignore[arg-type]
    assert feed.drain() == set()


def test_history_is_a_bounded_ring() -> None:
    state = FleetState(["a"], {"network": 1.0}, history_length=5)
    for i in range(8):
        state.record("a", "network", ProbeResult.make("ok", Health.OK, latency_ms=float(i)))
    assert state.history("a", "network") == [3.0, 4.0, 5.0, 6.0, 7.0]


async def test_first_polls_of_a_large_fleet_are_spread_not_burst(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    import pacs_tui.scheduler as scheduler_module

    monkeypatch.setattr(scheduler_module, "FIRST_POLLS_PER_S", 200)
    servers = [Box(f"s{i}") for i in range(300)]  # 300 / 200 per s: spread over 1.5 s
    probe = CountingProbe(delay=0.0)
    probe.interval_s = 30.0
    first_seen: dict[str, float] = {}
    original = probe.probe

    async def stamped(server: Box) -> ProbeResult:
        first_seen.setdefault(server.name, time.monotonic())
        return await original(server)

    probe.probe = stamped  # type: ignore[method-assign]
    scheduler, _ = make(servers, [probe])
    began = time.monotonic()
    task = asyncio.create_task(scheduler.run())
    try:
        async with asyncio.timeout(10):
            while len(first_seen) < len(servers):
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    offsets = sorted(t - began for t in first_seen.values())
    assert offsets[-1] > 1.0  # spread over ~1.5 s, not all at once
    assert sum(o < 0.3 for o in offsets) < 120  # ~60 expected in the first 0.3 s
