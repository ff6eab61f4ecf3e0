"""The rack-power probe against the DMTF's rack-server mockup (``public-rackmount1``).

Its chassis ``1U`` links both power schemas (``Power`` and
``PowerSubsystem``) and both thermal ones (``Thermal`` and
``ThermalSubsystem``), so the same payloads check each path: ``auto``
(the newer schema), and each one forced with ``rack_power_schema``. Every
expected value is read from the mockup's own JSON, not copied by hand.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pacs_tui.plugin_api import Health, ProbeContext, ProbeResult
from pacs_tui_redfish_power.rack_power import RedfishRackPowerProbe
from redfish_mockups import mockup_as_server, mockup_folder, mockup_payload
from redfish_peers import PASSWORD

CHASSIS = "/redfish/v1/Chassis/1U"


payload = mockup_payload


@asynccontextmanager
async def reading(
    tmp: Path, folder: Path, settings: Mapping[str, Any] | None = None
) -> AsyncIterator[ProbeResult]:
    """The probe's reading of ``folder`` served over HTTPS (logged out afterwards)."""
    async with mockup_as_server(tmp, folder, "rack-1") as (mockup, inventory):
        probe = RedfishRackPowerProbe()
        await probe.open(ProbeContext(inventory, dict(settings or {})))
        try:
            result = await probe.probe(inventory.server("rack-1"))
        finally:
            await probe.close()
        assert mockup.sessions == {}, "the probe logged out of every session it opened"
    assert PASSWORD not in repr(result)
    yield result


async def test_newer_schemas_are_preferred_and_read_exactly(tmp_path: Path) -> None:
    folder = mockup_folder("public-rackmount1")
    environment = payload(folder, f"{CHASSIS}/EnvironmentMetrics")
    bay1 = payload(folder, f"{CHASSIS}/PowerSubsystem/PowerSupplies/Bay1")
    bay1_metrics = payload(folder, f"{CHASSIS}/PowerSubsystem/PowerSupplies/Bay1/Metrics")
    bay2 = payload(folder, f"{CHASSIS}/PowerSubsystem/PowerSupplies/Bay2")
    subsystem = payload(folder, f"{CHASSIS}/PowerSubsystem")
    thermal = payload(folder, f"{CHASSIS}/ThermalSubsystem/ThermalMetrics")
    async with reading(tmp_path, folder) as result:
        facts = result.facts
    # The mockup's values, spelled out once so a changed mockup is noticed.
    assert environment["PowerWatts"]["Reading"] == 374
    assert thermal["TemperatureSummaryCelsius"]["Intake"]["Reading"] == 24.8
    assert facts["power_schema"] == "PowerSubsystem"
    assert facts["watts"] == environment["PowerWatts"]["Reading"]
    assert facts["watts_source"] == "EnvironmentMetrics.PowerWatts"
    assert facts["inlet_c"] == thermal["TemperatureSummaryCelsius"]["Intake"]["Reading"]
    assert facts["inlet_source"] == "ThermalMetrics.TemperatureSummaryCelsius.Intake"
    assert facts["supplies"] == [
        {
            "label": bay1["Location"]["PartLocation"]["ServiceLabel"],  # "PSU 1"
            "member": "Bay1",
            "state": "Enabled",
            "health": bay1["Status"]["Health"],  # "Warning": a predicted failure
            "input_ok": True,
            "input": f"LineInputStatus {bay1['LineInputStatus']}",
            "input_watts": bay1_metrics["InputPowerWatts"]["Reading"],  # 937.4
            "input_volts": bay1_metrics["InputVoltage"]["Reading"],  # 230.2
        },
        {
            "label": bay2["Location"]["PartLocation"]["ServiceLabel"],
            "member": "Bay2",
            "state": "Absent",
            "health": None,
            "input_ok": None,
            "input": "LineInputStatus not reported",
            "input_watts": None,
            "input_volts": None,
        },
    ]
    group = subsystem["PowerSupplyRedundancy"][0]
    assert facts["redundancy"] == [
        {"mode": group["RedundancyType"], "state": "UnavailableOffline", "health": "OK"}
    ]
    # PSU 1's Warning and the unavailable failover group are move-day faults.
    assert (result.state, result.health) == ("psu-fault", Health.DEGRADED)
    condition = bay1["Status"]["Conditions"][0]["Message"]
    assert f"PSU 1 (Bay1) health Warning: {condition}" in result.detail
    assert "power supply redundancy (Failover) UnavailableOffline" in result.detail
    assert "374 W (PowerSubsystem: EnvironmentMetrics.PowerWatts)" in result.detail
    assert "inlet 24.8 °C" in result.detail
    assert (facts["tls"], facts["auth"], facts["chassis_path"]) == ("verified", "session", CHASSIS)


async def test_legacy_power_and_thermal_read_exactly(tmp_path: Path) -> None:
    folder = mockup_folder("public-rackmount1")
    power = payload(folder, f"{CHASSIS}/Power")
    thermal = payload(folder, f"{CHASSIS}/Thermal")
    async with reading(tmp_path, folder, {"rack_power_schema": "legacy"}) as result:
        facts = result.facts
    control = power["PowerControl"][0]
    supply = power["PowerSupplies"][0]
    intake = next(t for t in thermal["Temperatures"] if t["PhysicalContext"] == "Intake")
    assert (control["PowerConsumedWatts"], intake["ReadingCelsius"]) == (344, 25)
    assert facts["power_schema"] == "Power"
    assert facts["watts"] == control["PowerConsumedWatts"]
    assert facts["watts_source"] == "Power.PowerControl[0].PowerConsumedWatts"
    assert facts["inlet_c"] == intake["ReadingCelsius"]
    assert facts["inlet_sensor"] == intake["Name"]  # "Chassis Intake Temp"
    assert facts["supplies"] == [
        {
            "label": supply["Name"],
            "member": supply["MemberId"],
            "state": "Enabled",
            "health": supply["Status"]["Health"],  # "Warning"
            "input_ok": True,
            "input": f"LineInputVoltage {supply['LineInputVoltage']} V",
            "input_watts": None,
            "input_volts": supply["LineInputVoltage"],
        }
    ]
    assert facts["redundancy"] == []  # this Power payload has no Redundancy array
    assert (result.state, result.health) == ("psu-fault", Health.DEGRADED)
    assert "Power Supply Bay (0) health Warning" in result.detail
    assert "344 W (Power: Power.PowerControl[0].PowerConsumedWatts)" in result.detail


async def test_forced_subsystem_reads_what_auto_reads(tmp_path: Path) -> None:
    folder = mockup_folder("public-rackmount1")
    async with reading(tmp_path, folder) as auto:
        pass
    (tmp_path / "forced").mkdir()
    forced_settings = {"rack_power_schema": "subsystem"}
    async with reading(tmp_path / "forced", folder, forced_settings) as forced:
        pass
    keep = ("watts", "watts_source", "power_schema", "supplies", "redundancy", "inlet_c")
    assert {k: forced.facts[k] for k in keep} == {k: auto.facts[k] for k in keep}


async def test_inlet_thresholds_come_from_settings_and_the_site(tmp_path: Path) -> None:
    folder = mockup_folder("public-rackmount1")
    # 24.8 °C: hot for a site whose critical limit is 24 °C ("dc" is write_inventory's site).
    by_site = {"rack_power_inlet_by_site": {"dc": {"warn_c": 20, "crit_c": 24}}}
    async with reading(tmp_path, folder, by_site) as result:
        assert (result.state, result.health) == ("inlet-hot", Health.DOWN)
        assert result.detail.startswith("inlet 24.8 °C ≥ 24 °C critical")
        assert (result.facts["inlet_warn_c"], result.facts["inlet_crit_c"]) == (20, 24)


async def test_a_truncated_power_resource_is_unknown_with_the_reason(tmp_path: Path) -> None:
    source = mockup_folder("public-rackmount1")
    folder = tmp_path / "mockup"
    shutil.copytree(source, folder)
    power = folder / "Chassis" / "1U" / "Power" / "index.json"
    power.write_bytes(power.read_bytes()[:300])  # cut off mid-object
    (tmp_path / "run").mkdir()
    async with reading(tmp_path / "run", folder, {"rack_power_schema": "legacy"}) as result:
        facts = result.facts
    assert (result.state, result.health) == ("unknown", Health.UNKNOWN)
    assert facts["watts"] is None and facts["supplies"] is None
    assert facts["inlet_c"] == 25  # what could be read still is
    assert f"malformed JSON from BMC (GET {CHASSIS}/Power)" in result.detail
    # The same reason as data, which the batch engine gives when a draw is missing.
    assert f"malformed JSON from BMC (GET {CHASSIS}/Power)" in facts["unread"]
    assert "0 W" not in result.detail


def _without(tmp: Path, *links: str, delete: str = "") -> Path:
    """A copy of the mockup whose chassis links none of ``links`` (and lacks ``delete``)."""
    import json

    folder = tmp / "mockup"
    shutil.copytree(mockup_folder("public-rackmount1"), folder)
    index = folder / "Chassis" / "1U" / "index.json"
    chassis = json.loads(index.read_text())
    for name in links:
        chassis.pop(name)
    index.write_text(json.dumps(chassis))
    if delete:
        shutil.rmtree(folder / "Chassis" / "1U" / delete)
    (tmp / "run").mkdir()
    return folder


async def test_a_bmc_without_power_or_thermal_resources_is_not_a_fault(tmp_path: Path) -> None:
    folder = _without(tmp_path, "Power", "PowerSubsystem", "Thermal", "ThermalSubsystem")
    async with reading(tmp_path / "run", folder) as result:
        facts = result.facts
    assert (result.state, result.health) == ("not-offered", Health.OK)
    assert facts["not_offered"] == ["inlet", "power"]
    assert facts["watts"] is None and facts["inlet_c"] is None  # never a number
    assert "power not offered by this BMC (the chassis links no PowerSubsystem nor Power)" in (
        result.detail
    )
    assert "0 W" not in result.detail


async def test_a_bmc_without_power_resources_is_judged_on_its_inlet(tmp_path: Path) -> None:
    folder = _without(tmp_path, "Power", "PowerSubsystem")
    async with reading(tmp_path / "run", folder) as result:
        facts = result.facts
    assert (result.state, result.health) == ("ok", Health.OK)
    assert facts["not_offered"] == ["power"] and facts["inlet_c"] == 24.8
    assert result.detail.startswith("inlet 24.8 °C")
    assert "power not offered by this BMC" in result.detail


async def test_a_linked_resource_that_cannot_be_read_stays_unknown(tmp_path: Path) -> None:
    # Linked but 404: a failed read, not a missing capability.
    folder = _without(tmp_path, "PowerSubsystem", delete="Power")
    async with reading(tmp_path / "run", folder) as result:
        assert (result.state, result.health) == ("unknown", Health.UNKNOWN)
        assert result.facts["not_offered"] == []
    # Offered only in the schema the setting excludes: not read, so unknown.
    (tmp_path / "forced").mkdir()
    folder = _without(tmp_path / "forced", "PowerSubsystem", "ThermalSubsystem")
    settings = {"rack_power_schema": "subsystem"}
    async with reading(tmp_path / "forced" / "run", folder, settings) as result:
        assert (result.state, result.health) == ("unknown", Health.UNKNOWN)
        assert (
            "the chassis links no PowerSubsystem (rack_power_schema: subsystem; it links Power)"
            in (result.detail)
        )
        assert result.facts["not_offered"] == []
