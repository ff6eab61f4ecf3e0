"""The rack-power probe against the simulator's BMCs over HTTPS, faults planted per server.

The simulator's chassis model (``pacs_tui.sim.redfish_power``) is the
expectation: its draw, supply shares and inlet for the host now. Flavours:
``generic`` serves only the newer schemas, ``legacy-power`` only the
deprecated ``Power``/``Thermal``, ``dual-power`` both.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pacs_tui.inventory import Server
from pacs_tui.plugin_api import Health, ProbeContext, ProbeResult
from pacs_tui.power import PowerState
from pacs_tui.sim.bmc import BmcFlavour
from pacs_tui.sim.faults import HostFaults
from pacs_tui.sim.host import HostTimings
from pacs_tui.sim.redfish_power import (
    BOOT_PEAK_FACTOR,
    draw_watts,
    idle_watts,
    inlet_celsius,
    supply_watts,
)
from pacs_tui_redfish_power.rack_power import RedfishRackPowerProbe
from pacs_tui_redfish_power.rack_power_verdict import RackPowerSettings
from redfish_peers import PASSWORD, BmcLab, bmc_lab

F = BmcFlavour


async def read(lab: BmcLab, name: str) -> ProbeResult:
    result = await lab.probe.probe(lab.server(name))
    assert PASSWORD not in repr(result)
    return result


async def test_a_healthy_server_in_each_schema(tmp_path: Path) -> None:
    flavours = {"new": F.GENERIC, "old": F.LEGACY_POWER, "both": F.DUAL_POWER}
    async with bmc_lab(tmp_path, flavours, probe=RedfishRackPowerProbe()) as lab:
        results = {name: await read(lab, name) for name in flavours}
        hosts = lab.hosts
    for name, result in results.items():
        host, facts = hosts[name], result.facts
        assert (result.state, result.health) == ("ok", Health.OK), result.detail
        assert facts["watts"] == idle_watts(host) == draw_watts(host)
        assert facts["inlet_c"] == inlet_celsius(host)
        assert [s["input_ok"] for s in facts["supplies"]] == [True, True]
        assert [s["health"] for s in facts["supplies"]] == ["OK", "OK"]
        assert [g["health"] for g in facts["redundancy"]] == ["OK"]
        assert facts["chassis_path"] == "/redfish/v1/Chassis/1"
    new, old, both = results["new"].facts, results["old"].facts, results["both"].facts
    assert (new["power_schema"], new["watts_source"]) == (
        "PowerSubsystem",
        "EnvironmentMetrics.PowerWatts",
    )
    half = supply_watts(hosts["new"], 1)
    assert [s["input_watts"] for s in new["supplies"]] == [half, half]
    assert [s["label"] for s in new["supplies"]] == ["PSU 1", "PSU 2"]
    assert new["inlet_source"] == "ThermalMetrics.TemperatureSummaryCelsius.Intake"
    assert (old["power_schema"], old["watts_source"]) == (
        "Power",
        "Power.PowerControl[0].PowerConsumedWatts",
    )
    assert old["inlet_source"] == "Thermal.Temperatures[].ReadingCelsius"
    assert [s["input"] for s in old["supplies"]] == ["LineInputVoltage 230 V"] * 2
    # Both served: the newer one is read, and the reading says so.
    assert both["power_schema"] == "PowerSubsystem"
    assert both["inlet_source"].startswith("ThermalMetrics")
    assert "(PowerSubsystem: EnvironmentMetrics.PowerWatts)" in results["both"].detail


async def test_an_unplugged_supply_is_degraded_and_named_even_while_off(tmp_path: Path) -> None:
    flavours = {"new": F.GENERIC, "old": F.LEGACY_POWER}
    power = dict.fromkeys(flavours, PowerState.OFF)  # racked, not yet powered on
    async with bmc_lab(tmp_path, flavours, probe=RedfishRackPowerProbe(), power=power) as lab:
        for host in lab.hosts.values():
            host.faults.update({"psu_unplugged": 2})
        new, old = await read(lab, "new"), await read(lab, "old")
        assert (new.state, new.health) == ("psu-fault", Health.DEGRADED)
        assert new.detail.startswith("PSU 2 (Bay2) without input (LineInputStatus LossOfInput)")
        assert "power supply redundancy (Failover) Critical" in new.detail
        assert (old.state, old.health) == ("psu-fault", Health.DEGRADED)
        assert old.detail.startswith("PSU 2 (1) without input (LineInputVoltage 0 V)")
        for result in (new, old):
            assert result.facts["watts"] == 0  # off: the BMC's own reading, not a guess
            assert [s["input_ok"] for s in result.facts["supplies"]] == [True, False]
        # Plugged in again: the next poll is clean.
        lab.hosts["new"].faults.update({"psu_unplugged": 0})
        assert (await read(lab, "new")).health is Health.OK


async def test_the_boot_peak_then_idle(tmp_path: Path) -> None:
    async with bmc_lab(
        tmp_path, {"s": F.GENERIC}, probe=RedfishRackPowerProbe(), power={"s": PowerState.OFF}
    ) as lab:
        host = lab.hosts["s"]
        host.timings = HostTimings(power_transition_s=0.05, boot_s=0.6, service_start_s=0.1)
        assert (await read(lab, "s")).facts["watts"] == 0
        host.reset("On")
        while host.power_state is not PowerState.ON:
            await asyncio.sleep(0.01)
        peak = (await read(lab, "s")).facts["watts"]
        assert peak == round(idle_watts(host) * BOOT_PEAK_FACTOR)
        await host.wait_idle()  # booted, services up
        await asyncio.sleep(0.05)
        assert (await read(lab, "s")).facts["watts"] == idle_watts(host)


async def test_inlet_thresholds_warm_and_hot(tmp_path: Path) -> None:
    settings = {"rack_power_inlet_warn_c": 27, "rack_power_inlet_crit_c": 35}
    flavours = {"warm": F.GENERIC, "hot": F.LEGACY_POWER}
    async with bmc_lab(tmp_path, flavours, probe=RedfishRackPowerProbe(), settings=settings) as lab:
        lab.hosts["warm"].faults.update({"inlet_celsius": 29.5})
        lab.hosts["hot"].faults.update({"inlet_celsius": 38})
        warm, hot = await read(lab, "warm"), await read(lab, "hot")
    assert (warm.state, warm.health) == ("inlet-warm", Health.DEGRADED)
    assert warm.detail.startswith("inlet 29.5 °C ≥ 27 °C warning")
    assert (hot.state, hot.health) == ("inlet-hot", Health.DOWN)
    assert hot.detail.startswith("inlet 38.0 °C ≥ 35 °C critical")
    assert hot.facts["inlet_c"] == 38 and hot.facts["endpoint_answered"] is True


async def test_blades_read_their_own_chassis(tmp_path: Path) -> None:
    flavours = {"b1": F.BLADE_ENCLOSURE, "b2": F.BLADE_ENCLOSURE}
    async with bmc_lab(tmp_path, flavours, probe=RedfishRackPowerProbe()) as lab:
        lab.hosts["b2"].faults.update({"psu_unplugged": 1})
        b1, b2 = await read(lab, "b1"), await read(lab, "b2")
        assert lab.sessions("b1") == 1  # one client, one session for the enclosure
    assert (b1.health, b1.facts["chassis_path"]) == (Health.OK, "/redfish/v1/Chassis/Blade1")
    assert (b2.health, b2.facts["chassis_path"]) == (Health.DEGRADED, "/redfish/v1/Chassis/Blade2")
    assert b2.detail.startswith("PSU 1 (Bay1) without input")


async def test_a_truncated_answer_is_unknown_with_the_reason(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, {"s": F.GENERIC}, probe=RedfishRackPowerProbe()) as lab:
        assert (await read(lab, "s")).health is Health.OK  # warm: the chassis path is known
        lab.hosts["s"].faults.update({"bmc_malformed_json": True})
        result = await read(lab, "s")
    assert (result.state, result.health) == ("unknown", Health.UNKNOWN)
    assert result.detail == "malformed JSON from BMC (GET /redfish/v1/Chassis/1)"
    assert "watts" not in result.facts


def test_psu_unplugged_takes_a_bay() -> None:
    faults = HostFaults()
    faults.update({"psu_unplugged": 2, "inlet_celsius": 31})
    assert faults.active() == {"psu_unplugged": 2, "inlet_celsius": 31.0}
    with pytest.raises(ValueError, match=r"a bay 1\.\.2"):
        faults.update({"psu_unplugged": 3})


def test_settings_are_checked_and_sites_get_their_own_limits() -> None:
    with pytest.raises(ValueError, match=r"warn_c \(40\) must be below crit_c \(35\)"):
        RackPowerSettings.from_settings({"rack_power_inlet_warn_c": 40})
    with pytest.raises(ValueError, match="rack_power_schema must be"):
        RackPowerSettings.from_settings({"rack_power_schema": "newest"})
    with pytest.raises(ValueError, match=r"rack_power_inlet_by_site\.dc-new\.crit_c"):
        RackPowerSettings.from_settings({"rack_power_inlet_by_site": {"dc-new": {"crit_c": "hot"}}})
    settings = RackPowerSettings.from_settings(
        {"rack_power_inlet_by_site": {"dc-new": {"warn_c": 24, "crit_c": 30}}}
    )
    new_hall = Server(name="arch-001", site="dc-new", role="archive")
    old_hall = Server(name="arch-002", site="dc-old", role="archive")
    assert (settings.limits(new_hall), settings.limits(old_hall)) == ((24, 30), (27, 35))


async def test_it_speaks_through_the_open_power_probes_session(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, {"s": F.GENERIC}) as lab:  # lab.probe: the power probe
        rack = RedfishRackPowerProbe()
        await rack.open(ProbeContext(lab.inventory, {}))
        try:
            assert (await lab.probe.probe(lab.server("s"))).state == "On"
            assert (await read_with(rack, lab, "s")).health is Health.OK
            assert lab.sessions("s") == 1  # one session on the BMC for both probes
        finally:
            await rack.close()
        assert (await lab.probe.probe(lab.server("s"))).state == "On"  # still logged in
        assert lab.sessions("s") == 1


async def read_with(probe: RedfishRackPowerProbe, lab: BmcLab, name: str) -> ProbeResult:
    result = await probe.probe(lab.server(name))
    assert PASSWORD not in repr(result)
    return result


async def test_a_bmc_without_power_telemetry_is_not_offered_not_unknown(tmp_path: Path) -> None:
    async with bmc_lab(
        tmp_path, {"bare": F.NO_POWER_TELEMETRY}, probe=RedfishRackPowerProbe()
    ) as lab:
        result = await read(lab, "bare")
    assert (result.state, result.health) == ("not-offered", Health.OK), result.detail
    assert result.facts["watts"] is None and result.facts["inlet_c"] is None
    assert result.facts["not_offered"] == ["inlet", "power"]
    assert "power not offered by this BMC" in result.detail
