"""Our own lag is not the peer's: the lag accounting, the verdicts, the first-sweep ramp.

Pure logic with numbers and fake probes, plus the ticker on a real event loop
blocked on purpose (no network here; test_loop_lag_sim.py has the real peer).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import pytest

from pacs_tui.dicom.client import DicomOutcome
from pacs_tui.loop_lag import (
    LagAccount,
    judge_latency,
    lag_explains_timeout,
    loop_lag,
    measure_loop_lag,
)
from pacs_tui.plugin_api import UNRELIABLE_FACT, Health, Probe, ProbeResult, first_poll
from pacs_tui.scheduler import ConcurrencyCaps, Scheduler
from pacs_tui.state import FleetState
from pacs_tui_dicom_echo.probe import DicomProbe, _FindTrack


def spin(seconds: float) -> None:
    """Keep the CPU (and so the event loop) busy without yielding."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


# -- the account: pure arithmetic -------------------------------------------------------


def test_an_overdue_wake_up_counts_until_now_and_then_is_committed() -> None:
    account = LagAccount(tolerance_s=0.002)
    account.scheduled(10.0)
    assert account.late_s(9.5) == 0.0  # not due yet
    assert account.late_s(10.001) == 0.0  # within the timer's own jitter
    assert account.late_s(10.302) == pytest.approx(0.3)  # overdue now: counted live
    account.woke(10.502)
    assert account.late_s(10.502) == pytest.approx(0.5)
    account.scheduled(10.522)
    assert account.late_s(10.52) == pytest.approx(0.5)  # flat while on time
    account.woke(10.523)  # 1 ms late: jitter, not lag
    assert account.late_s(11.0) == pytest.approx(0.5)
    assert account.worst_s == pytest.approx(0.5)


def test_the_total_never_goes_back_across_a_wake_up() -> None:
    account = LagAccount(tolerance_s=0.0)
    account.scheduled(1.0)
    readings = []
    for now in (1.0, 1.1, 1.2):
        readings.append(account.late_s(now))
    account.woke(1.2)
    readings.append(account.late_s(1.2))
    account.stopped()
    readings.append(account.late_s(5.0))  # stopped: nothing is due, nothing grows
    assert readings == sorted(readings)
    assert readings[-1] == pytest.approx(0.2)


# -- verdicts -----------------------------------------------------------------------------


def test_a_latency_is_judged_net_of_our_lag_and_never_optimistically() -> None:
    assert judge_latency(800, 1000, 0).verdict == "ok"
    assert judge_latency(800, 1000, 700).verdict == "ok"  # our lag only adds to it
    slow = judge_latency(1900, 1000, 300)
    assert slow.verdict == "slow"  # 1600 ms net of all our lag: the peer is slow
    assert slow.describe("echo") == (
        "slow: echo over 1000 ms (1900 ms, of which up to 300 ms our event loop's lag)"
    )
    spoiled = judge_latency(1443, 1000, 1400)
    assert spoiled.verdict == "unreliable"  # over the limit only because of us
    assert spoiled.net_ms == pytest.approx(43)
    assert spoiled.describe("echo") == (
        "measurement unreliable: event loop 1400 ms late during the echo (1443 ms measured)"
    )
    assert judge_latency(1001, 1000, 1).verdict == "unreliable"  # exactly at the edge
    assert judge_latency(1200, 1000, -5).verdict == "slow"  # a negative lag is no lag


def test_a_timeout_is_ours_only_when_the_loop_was_late_for_half_of_it() -> None:
    assert not lag_explains_timeout(100, 5.0)
    assert not lag_explains_timeout(2499, 5.0)
    assert lag_explains_timeout(2500, 5.0)


def test_the_dicom_probe_reports_a_spoiled_echo_as_unreliable_never_degraded() -> None:
    probe = DicomProbe()
    echo = DicomOutcome("ok", 1443.0, "echo ok")

    def judged(lag_ms: float) -> ProbeResult:
        return probe._ok_result(echo, _FindTrack(), fresh=False, tls="PLAINTEXT", lag_ms=lag_ms)

    truly_slow = judged(0.0)
    assert truly_slow.health is Health.DEGRADED
    assert "slow: echo over 1000 ms (1443 ms)" in truly_slow.detail
    ours = judged(1400.0)
    assert ours.health is Health.UNKNOWN
    assert ours.measurement_unreliable
    assert "measurement unreliable: event loop 1400 ms late during the echo" in ours.detail
    assert ours.facts["loop_lag_ms"] == 1400.0
    assert ours.latency_ms == 1443.0  # the measured figure stays what was measured
    fast = probe._ok_result(
        DicomOutcome("ok", 12.0, "echo ok"), _FindTrack(), fresh=False, tls="PLAINTEXT",
        lag_ms=900.0,
    )  # fmt: skip
    assert fast.health is Health.OK and not fast.measurement_unreliable


# -- the ticker on a real loop ------------------------------------------------------------


async def test_a_blocked_loop_is_measured_and_an_idle_one_is_not() -> None:
    with measure_loop_lag() as idle:
        await asyncio.sleep(0.3)
    assert idle.late_ms < 30

    async def hog() -> None:
        await asyncio.sleep(0.05)
        spin(0.4)

    with measure_loop_lag() as busy:
        hogging = asyncio.create_task(hog())
        await asyncio.sleep(0.2)  # due in the middle of the hog: wakes ~250 ms late
        await hogging
    assert 300 <= busy.late_ms <= 600
    frozen = busy.late_ms
    spin(0.1)
    assert busy.late_ms == frozen  # closed windows keep their figure
    assert not loop_lag().running  # no window open: the ticker is off


async def test_a_window_opened_inside_a_stall_sees_only_its_own_part() -> None:
    with measure_loop_lag() as outer:
        await asyncio.sleep(0.05)
        spin(0.3)
        with measure_loop_lag() as inner:  # opens at the end of the stall
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
    assert outer.late_ms >= 250
    assert inner.late_ms < 30


# -- the scheduler: ramp and measuring again ---------------------------------------------


@dataclass(frozen=True)
class Box:
    name: str
    depends_on: tuple[str, ...] = ()


class RampProbe(Probe):
    """Counts polls in flight; some servers never answer; some are spoiled once."""

    name = "dicom"
    interval_s = 10.0
    timeout_s = 0.5

    def __init__(self, *, silent: frozenset[str] = frozenset(), spoiled_once: frozenset[str] = frozenset()) -> None:  # fmt: skip
        self.silent = silent
        self.spoiled = set(spoiled_once)
        self.in_flight = 0
        self.peak = 0
        self.calls: list[str] = []

    def applies_to(self, server: Box) -> bool:  # type: ignore[override]
        return True

    def endpoint(self, server: Box) -> str:  # type: ignore[override]
        return f"host:{server.name}"

    async def probe(self, server: Box) -> ProbeResult:  # type: ignore[override]
        self.calls.append(server.name)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(5 if server.name in self.silent else 0.02)
        finally:
            self.in_flight -= 1
        if server.name in self.spoiled:
            self.spoiled.discard(server.name)
            return ProbeResult.unreliable("ok", "measurement unreliable: test", 900.0)
        return ProbeResult.make("ok", Health.OK, latency_ms=1.0)


def scheduler_for(probe: Probe, names: list[str], caps: ConcurrencyCaps) -> tuple[Scheduler, FleetState]:  # fmt: skip
    servers = [Box(n) for n in names]
    state = FleetState(names, {probe.name: probe.interval_s})
    return Scheduler(servers, [probe], state, caps, seed=1), state  # type: ignore[arg-type]


async def test_first_polls_ramp_and_later_polls_do_not_wait_for_the_ramp() -> None:
    probe = RampProbe()
    names = [f"s{i:02d}" for i in range(40)]
    scheduler, state = scheduler_for(probe, names, ConcurrencyCaps(first_polls=5))
    await scheduler.sweep()
    assert probe.peak == 5  # never more first polls at once than the ramp allows
    assert scheduler.peak_first_polls == 5
    assert all(state.reading(n, "dicom").health is Health.OK for n in names)
    probe.peak = 0
    await scheduler.sweep()  # every pair is past its first poll: no ramp
    assert probe.peak == 40


async def test_a_silent_endpoint_holds_the_ramp_only_briefly() -> None:
    probe = RampProbe(silent=frozenset({"s00", "s01"}))
    names = [f"s{i:02d}" for i in range(12)]
    caps = ConcurrencyCaps(first_polls=2, first_poll_hold_s=0.1)
    scheduler, state = scheduler_for(probe, names, caps)
    began = time.monotonic()
    sweep = asyncio.create_task(scheduler.sweep())
    while not all(state.latest(n, "dicom") for n in names[2:]):
        await asyncio.sleep(0.01)
    assert time.monotonic() - began < 0.5  # not the silent ones' 2 s deadline
    await sweep  # they end as the scheduler's deadline says
    assert state.reading("s00", "dicom").health is Health.DOWN


async def test_a_sweep_measures_spoiled_readings_again_when_its_rush_is_over() -> None:
    probe = RampProbe(spoiled_once=frozenset({"s03", "s07"}))
    names = [f"s{i:02d}" for i in range(10)]
    scheduler, state = scheduler_for(probe, names, ConcurrencyCaps())
    await scheduler.sweep()
    assert probe.calls.count("s03") == 2 and probe.calls.count("s07") == 2
    assert probe.calls.count("s00") == 1
    assert scheduler.remeasured == 2
    reading = state.reading("s03", "dicom")
    assert reading.health is Health.OK and reading.result is not None
    assert UNRELIABLE_FACT not in reading.result.facts


async def test_a_poll_cut_off_while_our_loop_was_stuck_is_unreliable_not_down() -> None:
    class Stuck(RampProbe):
        timeout_s = 0.1  # the scheduler cuts a poll off after 1.2 s

        async def probe(self, server: Box) -> ProbeResult:  # type: ignore[override]
            await asyncio.sleep(0.01)
            spin(1.3)  # our own loop, stuck past the deadline
            await asyncio.sleep(10)
            raise AssertionError("cut off before")

    probe = Stuck()
    scheduler, _ = scheduler_for(probe, ["s00"], ConcurrencyCaps())
    result = await scheduler.poll(Box("s00"), probe)  # type: ignore[arg-type]
    assert result.health is Health.UNKNOWN
    assert result.measurement_unreliable
    assert "measurement unreliable: event loop" in result.detail


# -- SSH: our own connection slots ---------------------------------------------------------


async def test_an_ssh_poll_that_found_our_own_slots_full_is_unreliable_not_down() -> None:
    from pacs_tui.inventory import Server, SshEndpoint
    from pacs_tui_ssh_services.connections import HostConnections
    from pacs_tui_ssh_services.probe import SshServiceProbe

    async def hangs(login: SshEndpoint) -> Any:
        await asyncio.sleep(10)  # a login that never ends holds our only slot

    probe = SshServiceProbe()
    probe.timeout_s = 0.2
    probe._pool = HostConnections(hangs, max_new=1)
    first, second = (
        Server(name, "dc", "archive", ssh=SshEndpoint(f"127.0.0.{i}", 2222))
        for i, name in ((1, "a"), (2, "b"))
    )
    holding = asyncio.create_task(probe.probe(first))
    await asyncio.sleep(0.01)
    queued = await probe.probe(second)
    assert (queued.state, queued.health) == ("queued", Health.UNKNOWN)
    assert queued.measurement_unreliable and not queued.endpoint_failed  # no backoff
    assert queued.detail.startswith("not measured: all 1 new-connection slots stayed busy")
    timed_out = await holding  # the host itself that never answered is DOWN
    assert (timed_out.state, timed_out.health) == ("timeout", Health.DOWN)
    assert not timed_out.measurement_unreliable


async def test_the_continuous_loop_comes_back_soon_for_a_check_left_for_later() -> None:
    class Leaves(RampProbe):
        async def probe(self, server: Box) -> ProbeResult:  # type: ignore[override]
            self.calls.append(server.name)
            if first_poll():
                return ProbeResult.follow_up("ok", "echo ok; C-FIND not run yet")
            return ProbeResult.make("ok", Health.OK, latency_ms=1.0)

    probe = Leaves()  # interval 10 s
    scheduler, state = scheduler_for(probe, ["s00"], ConcurrencyCaps())
    began = time.monotonic()
    task = asyncio.create_task(scheduler.run())
    try:
        while len(probe.calls) < 2 and time.monotonic() - began < 5:
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(probe.calls) == 2  # the second poll came after the spread, not the interval
    assert time.monotonic() - began < 4
    reading = state.reading("s00", "dicom")
    assert reading.health is Health.OK
    assert not ProbeResult.follow_up("ok", "x").endpoint_failed  # never backed off
