"""Flapping: a unit that keeps failing and recovering is one standing problem, with a period.

Pure logic of ``detect_flap`` first, then the real scheduler and SSH probe
against simulated sshds whose unit flaps (fault ``flapping_unit``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Static

from pacs_tui.flapping import FLAP_HOLD_PERIODS, HealthChange, detect_flap
from pacs_tui.inventory import Inventory
from pacs_tui.plugin_api import Health, ProbeContext, ProbeResult
from pacs_tui.report import probe_view
from pacs_tui.rollup import fleet_rollup
from pacs_tui.scheduler import Scheduler
from pacs_tui.state import FleetState
from pacs_tui_ssh_services.probe import SshServiceProbe
from pacs_tui_widgets.detail_pane import DetailPane
from pacs_tui_widgets.fleet_health import FleetHealth
from pacs_tui_widgets.health_style import STATE_VARIABLE_DEFAULTS
from pacs_tui_widgets.summary_bar import summary_markup
from ssh_peers import SimFleet, sim_fleet

OK, BAD = Health.OK, Health.DEGRADED


def alternating(times: list[float], start_ok: bool = True) -> list[HealthChange]:
    """Changes at ``times``, going bad first (from OK) and then recovering, in turn."""
    changes = []
    ok = start_ok
    for at in times:
        before, after = (OK, BAD) if ok else (BAD, OK)
        changes.append(HealthChange(at, before, after, "pacs failed" if ok else "active"))
        ok = not ok
    return changes


def test_two_failures_and_two_recoveries_are_a_flap_with_its_period() -> None:
    changes = alternating([100.0, 102.0, 104.0, 106.0, 108.0, 110.0])
    flap = detect_flap(changes, now=111.0)
    assert flap is not None
    assert flap.period_s == pytest.approx(4.0) and flap.failures == 3
    assert flap.worst is BAD and flap.bad_detail == "pacs failed"
    assert "about every 4.0 s" in flap.describe() and "3 failures in 10 s" in flap.describe()


def test_one_failure_and_recovery_is_an_incident_not_a_flap() -> None:
    assert detect_flap(alternating([100.0, 102.0, 104.0]), now=105.0) is None
    assert detect_flap(alternating([100.0, 102.0]), now=103.0) is None


def test_a_flap_ends_when_the_unit_settles_up_or_failed() -> None:
    changes = alternating([100.0, 102.0, 104.0, 106.0])  # period 4 s, last change: recovered
    assert detect_flap(changes, now=106.0 + FLAP_HOLD_PERIODS * 4.0 - 0.1) is not None
    assert detect_flap(changes, now=106.0 + FLAP_HOLD_PERIODS * 4.0 + 0.1) is None
    failed = alternating([100.0, 102.0, 104.0, 106.0, 108.0])  # ends failed
    assert detect_flap(failed, now=108.0 + FLAP_HOLD_PERIODS * 4.0 + 0.1) is None


def test_old_changes_do_not_make_a_flap() -> None:
    changes = alternating([100.0, 102.0, 104.0, 106.0])
    assert detect_flap(changes, now=107.0, window_s=5.0) is None


def test_the_state_reports_a_flap_as_its_worst_health_and_the_word_flapping() -> None:
    clock = [1000.0]
    state = FleetState(["a"], {"ssh": 1.0}, clock=lambda: clock[0])
    for i in range(7):
        health = BAD if i % 2 else OK
        state.record("a", "ssh", ProbeResult("x", health, 1.0, "pacs failed", 1000.0 + i))
    clock[0] = 1006.5
    reading = state.reading("a", "ssh")
    assert reading.flap is not None and reading.state == "flapping"
    assert reading.health is BAD  # the latest result said OK: not in between failures
    assert reading.result is not None and reading.result.health is OK


# -- against simulated sshds, with the real scheduler -------------------------------

FLAP_PERIOD_S = 1.0  # the sim's unit is failed 1 s, then active 1 s: a 2 s cycle
POLL_S = 0.2


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[SimFleet]:
    async with sim_fleet(tmp_path / "keys", count=2) as started:
        yield started


class DetailApp(App[None]):
    """Just the detail pane, on the scheduler's state."""

    def __init__(self, state: FleetState, inventory: Inventory, probe: str) -> None:
        super().__init__()
        self.pane = DetailPane(
            state,
            [probe],
            {s.name: frozenset({probe}) for s in inventory.servers},
            {s.name: s for s in inventory.servers},
        )

    def compose(self) -> ComposeResult:
        yield self.pane

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return {**super().get_theme_variable_defaults(), **STATE_VARIABLE_DEFAULTS}


@pytest.mark.timeout(120)
async def test_a_flapping_unit_on_the_simulator_is_called_flapping_with_its_period(
    fleet: SimFleet, tmp_path: Path
) -> None:
    flapper, steady = fleet.hosts
    flapper.faults.update({"flapping_unit": "pacs", "flap_period_s": FLAP_PERIOD_S})
    inventory = fleet.inventory(tmp_path / "inventory.yaml")
    probe = SshServiceProbe()
    probe.interval_s = POLL_S
    await probe.open(ProbeContext(inventory, {}))
    state = FleetState(inventory.names(), {"ssh": POLL_S})
    scheduler = Scheduler(inventory.servers, [probe], state, seed=5)
    health = FleetHealth(inventory.names())
    changes: list[tuple[float, Health, Health]] = []

    def look() -> None:
        rollup = fleet_rollup(inventory, state, lambda s: ("ssh",))
        for server, (before, after) in health.absorb(rollup.health).items():
            if server == flapper.name:
                changes.append((time.monotonic(), before, after))

    task = asyncio.create_task(scheduler.run())
    try:
        deadline = time.monotonic() + 30
        while state.reading(flapper.name, "ssh").flap is None:
            assert time.monotonic() < deadline, state.changes(flapper.name, "ssh")
            look()
            await asyncio.sleep(0.05)
        detected_at = time.monotonic()
        # Three more cycles: the verdict holds, the health does not move.
        while time.monotonic() - detected_at < 3 * 2 * FLAP_PERIOD_S:
            look()
            reading = state.reading(flapper.name, "ssh")
            assert reading.flap is not None and reading.health is Health.DEGRADED, reading
            assert state.reading(steady.name, "ssh").flap is None
            await asyncio.sleep(0.05)
        flap = state.reading(flapper.name, "ssh").flap
        assert flap is not None
        # The sim's unit fails every 2 × flap_period_s; polls every 0.2 s see it to a poll or two.
        assert 2 * FLAP_PERIOD_S - 2.5 * POLL_S <= flap.period_s <= 2 * FLAP_PERIOD_S + 2.5 * POLL_S
        assert flap.bad_detail == "pacs failed"
        rollup = fleet_rollup(inventory, state, lambda s: ("ssh",))
        assert [p for p, _ in rollup.flapping[flapper.name]] == ["ssh"]
        assert steady.name not in rollup.flapping
        assert f"[b]FLAPPING[/b] {flapper.name} ssh flapping ok ↔ degraded" in summary_markup(
            rollup
        )
        app = DetailApp(state, inventory, "ssh")
        async with app.run_test(size=(60, 20)) as pilot:
            app.pane.show(flapper.name)
            await pilot.pause()
            text = str(app.query_one("#detail-ssh", Static).render())
            assert "flapping ok ↔ degraded about every" in text, text
            assert "pacs failed" in text
        # Once flapping, no more OK <-> DEGRADED notices for that server.
        assert all(at <= detected_at + 0.2 for at, _, _ in changes), changes

        # The unit settles (active): within two periods the flap is over, the server OK.
        flapper.faults.update({"flapping_unit": ""})
        settled = time.monotonic()
        while state.reading(flapper.name, "ssh").health is not Health.OK:
            assert time.monotonic() - settled < 20, state.reading(flapper.name, "ssh")
            await asyncio.sleep(0.05)
        assert state.reading(flapper.name, "ssh").flap is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await probe.close()


def test_status_json_shows_the_flap() -> None:
    state = FleetState(["a"], {"ssh": 1.0}, clock=lambda: 1006.5)
    for i in range(7):
        health = BAD if i % 2 else OK
        state.record("a", "ssh", ProbeResult("x", health, 1.0, "pacs failed", 1000.0 + i))
    view = probe_view(state, "a", "ssh", 1006.5)
    assert view["state"] == "flapping" and view["health"] == "degraded"
    assert view["flapping"]["failures"] == 3 and view["flapping"]["period_s"] == 2.0
