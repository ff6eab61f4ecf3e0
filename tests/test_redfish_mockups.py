"""The power probe against the DMTF's own example payloads (Redfish mockups).

The simulator's BMCs are ours; the mockups are the standards body's: a rack
server (one system, a Warning rolled up from a sensor) and a blade enclosure
(one manager, four systems). Served read-only over HTTPS by ``redfish_mockups``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pacs_tui.inventory import Inventory
from pacs_tui.plugin_api import Health, ProbeContext, ProbeResult
from pacs_tui_redfish_power.probe import RedfishPowerProbe
from redfish_mockups import MockupService, mockup_as_servers, mockup_folder
from redfish_peers import PASSWORD


def members(folder: Path) -> list[str]:
    """The Ids of the mockup's ComputerSystems, in collection order."""
    collection = json.loads((folder / "Systems" / "index.json").read_text())
    return [str(m["@odata.id"]).rstrip("/").rsplit("/", 1)[1] for m in collection["Members"]]


def system(folder: Path, system_id: str) -> dict[str, Any]:
    """The mockup's own ComputerSystem payload."""
    return dict(json.loads((folder / "Systems" / system_id / "index.json").read_text()))


@asynccontextmanager
async def probing(
    tmp: Path, folder: Path, servers: Mapping[str, Mapping[str, Any]]
) -> AsyncIterator[tuple[RedfishPowerProbe, Inventory, MockupService]]:
    """The mockup on HTTPS, an inventory of ``servers`` (name -> extra bmc keys) and an open probe."""
    async with mockup_as_servers(tmp, folder, servers) as (mockup, inventory):
        probe = RedfishPowerProbe()
        await probe.open(ProbeContext(inventory, {}))
        try:
            yield probe, inventory, mockup
        finally:
            await probe.close()
        assert mockup.sessions == {}, "the probe logged out of every session it opened"


async def read(probe: RedfishPowerProbe, inventory: Inventory, name: str) -> ProbeResult:
    result = await probe.probe(inventory.server(name))
    assert PASSWORD not in repr(result)
    return result


async def test_rack_server_power_state_and_health(tmp_path: Path) -> None:
    folder = mockup_folder("public-rackmount1")
    (only,) = members(folder)
    payload = system(folder, only)
    async with probing(tmp_path, folder, {"rack-1": {}}) as (probe, inventory, _):
        result = await read(probe, inventory, "rack-1")
    assert payload["PowerState"] == "On" and payload["Status"]["Health"] == "OK"
    assert (result.state, result.health, result.detail) == ("On", Health.OK, "powered on")
    assert result.facts["health"] == "OK"  # Status.Health; the Warning is only in HealthRollup
    assert result.facts["system_path"] == f"/redfish/v1/Systems/{only}"
    reset = payload["Actions"]["#ComputerSystem.Reset"]
    assert result.facts["reset_target"] == reset["target"]
    assert result.facts["reset_types"] == reset["ResetType@Redfish.AllowableValues"]
    assert (result.facts["auth"], result.facts["tls"]) == ("session", "verified")


async def test_each_named_blade_reads_its_own_system(tmp_path: Path) -> None:
    folder = mockup_folder("public-bladed")
    ids = members(folder)
    assert len(ids) > 1
    servers = {f"blade-{i}": {"system": system_id} for i, system_id in enumerate(ids, 1)}
    async with probing(tmp_path, folder, servers) as (probe, inventory, mockup):
        results = {name: await read(probe, inventory, name) for name in servers}
        assert len(mockup.sessions) == 1  # the blades share one BMC, so one login
    for (name, extra), result in zip(servers.items(), results.values(), strict=True):
        payload = system(folder, extra["system"])
        assert result.state == payload["PowerState"], name
        assert (payload["Status"]["Health"], result.health) == ("OK", Health.OK), name
        assert result.facts["system_path"] == f"/redfish/v1/Systems/{extra['system']}", name
        assert result.facts["reset_target"] == payload["Actions"]["#ComputerSystem.Reset"]["target"]
        assert result.facts["system_members"] == ids


async def test_a_blade_naming_no_system_is_ambiguous(tmp_path: Path) -> None:
    folder = mockup_folder("public-bladed")
    ids = members(folder)
    async with probing(tmp_path, folder, {"which-blade": {}}) as (probe, inventory, _):
        result = await read(probe, inventory, "which-blade")
    assert (result.state, result.health) == ("Unknown", Health.UNKNOWN)
    assert "ambiguous" in result.detail
    for system_id in ids:
        assert system_id in result.detail
    assert result.facts["system_members"] == ids
