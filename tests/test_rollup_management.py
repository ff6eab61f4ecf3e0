"""A silent BMC is a management fault, not lost hospital service; and what stays an outage.

Pure roll-up logic on a hand-made state first, then the real simulated data
center read by the real probe plugins, the roll-up, the summary bar's text
and the wall.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pacs_tui.inventory import Inventory, load_inventory
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import Health
from pacs_tui.power import PowerState
from pacs_tui.report import server_view
from pacs_tui.rollup import BMC_ONLY, BMC_ONLY_DEGRADED, applicable_probes, fleet_rollup
from pacs_tui.sim.datacenter import SimOptions, SimulatedDataCenter
from pacs_tui_widgets.summary_bar import summary_markup
from pacs_tui_widgets.wall import WallApp
from test_rollup import NOW, all_probes, hand_inventory, healthy_state, record

# -- pure logic -------------------------------------------------------------------


def test_a_silent_bmc_of_a_serving_router_affects_no_site() -> None:
    inventory = hand_inventory()
    state = healthy_state(inventory)
    record(state, "rtr-1", "power", "unreachable", Health.DOWN)
    rollup = fleet_rollup(inventory, state, all_probes)
    assert rollup.affected == ()
    assert rollup.down == ()
    assert rollup.health["rtr-1"] is Health.DEGRADED
    assert dict(rollup.management) == {"rtr-1": Health.OK}
    assert rollup.management_word("rtr-1") == BMC_ONLY
    text = summary_markup(rollup)
    assert "no hospital or clinic affected" in text
    assert f"rtr-1 {BMC_ONLY}" in text and "MANAGEMENT" in text


def test_a_silent_bmc_silences_rack_power_too_and_a_psu_fault_is_its_own() -> None:
    """rack-power reads the same BMC: silent with power, one management fault, not DOWN;
    with the BMC answering, a PSU without input is DEGRADED (a real finding)."""
    from pacs_tui.rollup_tracker import RollupTracker
    from pacs_tui.state import FleetState
    from test_rollup import INTERVALS

    inventory = hand_inventory()
    state = FleetState(inventory.names(), {**INTERVALS, "rack-power": 30.0}, clock=lambda: NOW)
    for name in inventory.names():
        for probe, word in (("power", "On"), ("network", "ok"), ("dicom", "ok"),
                            ("rack-power", "ok")):  # fmt: skip
            record(state, name, probe, word, Health.OK)
    record(state, "rtr-1", "power", "unreachable", Health.DOWN)
    record(state, "rtr-1", "rack-power", "unreachable", Health.UNREACHABLE)
    record(state, "gw-a-1", "rack-power", "psu-fault", Health.DEGRADED)

    def with_rack(server: object) -> tuple[str, ...]:
        return ("power", "network", "dicom", "rack-power")

    for rollup in (fleet_rollup(inventory, state, with_rack),
                   RollupTracker(inventory, state, with_rack).rollup()):  # fmt: skip
        assert rollup.health["rtr-1"] is Health.DEGRADED, rollup.health
        assert dict(rollup.management) == {"rtr-1": Health.OK}
        assert rollup.down == () and rollup.affected == ()
        assert rollup.health["gw-a-1"] is Health.DEGRADED


def test_a_silent_bmc_with_degraded_service_says_so() -> None:
    inventory = hand_inventory()
    state = healthy_state(inventory)
    record(state, "rtr-1", "power", "unreachable", Health.DOWN)
    record(state, "rtr-1", "dicom", "slow", Health.DEGRADED)
    rollup = fleet_rollup(inventory, state, all_probes)
    assert rollup.affected == ()
    assert rollup.management_word("rtr-1") == BMC_ONLY_DEGRADED


@pytest.mark.parametrize(
    ("probe", "word", "health", "age_s"),
    [
        ("network", "refused", Health.DOWN, 1.0),  # the OS is gone too
        ("dicom", "rejected", Health.DOWN, 1.0),  # the PACS service is down
        ("dicom", "ok", Health.OK, 100.0),  # stale: no proof the service answers
        ("dicom", "error", Health.UNKNOWN, 1.0),  # unknown: no proof either
    ],
)
def test_a_silent_bmc_without_proof_of_service_is_still_an_outage(
    probe: str, word: str, health: Health, age_s: float
) -> None:
    inventory = hand_inventory()
    state = healthy_state(inventory)
    record(state, "rtr-1", "power", "unreachable", Health.DOWN)
    record(state, "rtr-1", probe, word, health, age_s)
    rollup = fleet_rollup(inventory, state, all_probes)
    assert rollup.health["rtr-1"] is Health.DOWN
    assert "rtr-1" not in rollup.management
    assert {a.site for a in rollup.affected} == {"hosp-a", "clinic-c"}


def test_a_silent_bmc_with_no_other_probe_is_still_down() -> None:
    inventory = hand_inventory()
    state = healthy_state(inventory)
    record(state, "rtr-1", "power", "unreachable", Health.DOWN)
    rollup = fleet_rollup(inventory, state, lambda s: ("power",))
    assert rollup.health["rtr-1"] is Health.DOWN and rollup.management == {}


def test_a_server_switched_off_is_down_whatever_its_other_probes_said() -> None:
    inventory = hand_inventory()
    state = healthy_state(inventory)
    record(state, "rtr-1", "power", "Off", Health.OK)
    rollup = fleet_rollup(inventory, state, all_probes)
    assert rollup.health["rtr-1"] is Health.DOWN and rollup.management == {}
    assert {a.site for a in rollup.affected} == {"hosp-a", "clinic-c"}


# -- on the simulator ---------------------------------------------------------------


def router_serving_a_hospital(center: SimulatedDataCenter, inventory: Inventory) -> str:
    kinds = dict(center.fleet.sites)
    for server in inventory.servers:
        if kinds.get(server.site) != "hospital":
            continue
        for parent in server.depends_on:
            if inventory.server(parent).role == "dicom-router":
                return parent
    raise AssertionError("the simulated fleet has no router serving a hospital")


@pytest.mark.timeout(180)
async def test_simulator_bmc_outage_is_management_and_real_outages_still_count(
    tmp_path: Path,
) -> None:
    options = SimOptions(servers=14, address_octet=random.randint(100, 250), time_scale=0.02)
    center = SimulatedDataCenter(options)
    paths = center.write_client_files(tmp_path)
    inventory = load_inventory(paths["inventory"])
    router = router_serving_a_hospital(center, inventory)
    await center.start()
    monitor = FleetMonitor(inventory)
    try:
        await monitor.open()
        applicable = applicable_probes(monitor.probes)
        await monitor.sweep()
        healthy = fleet_rollup(inventory, monitor.state, applicable)
        assert healthy.health[router] is Health.OK, monitor.state.reading(router, "power")
        assert healthy.affected == ()

        # 1. Only the BMC is gone: the router still routes studies.
        await center.set_faults(router, {"bmc_unreachable": True})
        await monitor.sweep()
        power = monitor.state.reading(router, "power")
        assert power.health is Health.DOWN, power
        rollup = fleet_rollup(inventory, monitor.state, applicable)
        assert rollup.affected == (), [a.reason for a in rollup.affected]
        assert dict(rollup.management) == {router: Health.OK}
        assert router not in rollup.down
        text = summary_markup(rollup)
        assert "no hospital or clinic affected" in text and f"{router} {BMC_ONLY}" in text

        wall = WallApp(inventory, monitor=monitor, page_seconds=1000)
        async with wall.run_test(size=(140, 45)) as pilot:
            wall.refresh_wall()
            await pilot.pause()
            management = wall.query_one("#wall-management")
            assert management.parent is not None and management.parent.display
            assert router in str(management.render())
            assert wall.rollup is not None and wall.rollup.affected == ()
            assert wall.query_one("#count-down").count == 0  # type: ignore[attr-defined]

        # 2. The BMC is still silent and the DICOM service refuses: an outage.
        await center.set_faults(router, {"dicom_reject": "busy"})
        await monitor.sweep()
        rollup = fleet_rollup(inventory, monitor.state, applicable)
        assert rollup.health[router] is Health.DOWN
        assert router not in rollup.management
        assert rollup.affected and all(router in a.culprits for a in rollup.affected)

        # 3. The BMC answers again and says the router is off: an outage.
        await center.clear_faults(router)
        center.host(router).reset("ForceOff")
        await center.host(router).wait_idle()
        assert center.host(router).power_state is PowerState.OFF
        await monitor.sweep()
        rollup = fleet_rollup(inventory, monitor.state, applicable)
        assert monitor.state.reading(router, "power").state == PowerState.OFF
        assert rollup.health[router] is Health.DOWN and rollup.management == {}
        assert rollup.affected and all(router in a.culprits for a in rollup.affected)
    finally:
        await monitor.close()
        await center.stop()


def test_status_json_names_the_management_fault() -> None:
    inventory = hand_inventory()
    state = healthy_state(inventory)
    record(state, "rtr-1", "power", "unreachable", Health.DOWN)
    view = server_view(
        inventory.server("rtr-1"), state, all_probes(inventory.server("rtr-1")), now=NOW
    )
    assert view["management"] == BMC_ONLY and view["healthy"] is False
    assert "management" not in server_view(
        inventory.server("rtr-2"), state, all_probes(inventory.server("rtr-2")), now=NOW
    )


def test_status_table_calls_it_a_management_fault(capsys: pytest.CaptureFixture[str]) -> None:
    from pacs_tui.cli.status import _print

    inventory = hand_inventory()
    state = healthy_state(inventory)
    record(state, "rtr-1", "power", "unreachable", Health.DOWN)
    views = [
        server_view(inventory.server(n), state, all_probes(inventory.server(n)), now=NOW)
        for n in ("rtr-1", "rtr-2")
    ]
    _print(views, as_json=False)
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert f"{BMC_ONLY} (management fault); power:" in rows["rtr-1"]
    assert "management" not in rows["rtr-2"]
