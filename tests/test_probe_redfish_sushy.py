"""The Redfish power probe against sushy-emulator, OpenStack's Redfish emulator.

sushy-emulator has no SessionService, so the probe must fall back to HTTP
Basic and say so; its resets land after a random 1-11 s delay.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from pacs_tui.inventory import Server
from pacs_tui.plugin_api import Health, ProbeContext
from pacs_tui_redfish_power.probe import RedfishPowerProbe
from peers import require_binary, require_module
from redfish_peers import (
    PASSWORD,
    SUSHY_RESET_TYPES,
    SushyEmulator,
    sushy_emulator,
    write_inventory,
)

pytestmark = pytest.mark.peer("sushy-emulator")


@pytest.fixture
def sushy(tmp_path: Path) -> Iterator[SushyEmulator]:
    require_module("sushy_tools")
    binary = require_binary("sushy-emulator", str(Path(sys.executable).parent / "sushy-emulator"))
    with sushy_emulator(binary, tmp_path) as emulator:
        yield emulator


@asynccontextmanager
async def probing(
    folder: Path, emulator: SushyEmulator, password: str = PASSWORD
) -> AsyncIterator[tuple[RedfishPowerProbe, Server]]:
    bmc = {
        "address": emulator.address,
        "port": emulator.port,
        "scheme": "http",
        "credentials": "bmc-admin",
    }
    inventory = write_inventory(folder, {"sushy-01": bmc}, password=password)
    probe = RedfishPowerProbe()
    await probe.open(ProbeContext(inventory))
    try:
        yield probe, inventory.server("sushy-01")
    finally:
        await probe.close()


async def test_reads_power_state_with_basic_auth_fallback(
    tmp_path: Path, sushy: SushyEmulator
) -> None:
    async with probing(tmp_path, sushy) as (probe, server):
        result = await probe.probe(server)
    assert (result.state, result.health) == ("On", Health.OK)
    assert result.facts["auth"] == "basic"
    assert "no SessionService: basic auth" in result.detail
    assert result.facts["tls"] == "PLAINTEXT"
    assert result.facts["system_path"] == f"/redfish/v1/Systems/{sushy.system_uuid}"
    assert result.facts["reset_types"] == SUSHY_RESET_TYPES  # its inline AllowableValues
    assert result.facts["reset_target"] == (
        f"/redfish/v1/Systems/{sushy.system_uuid}/Actions/ComputerSystem.Reset"
    )
    assert result.latency_ms is not None and result.latency_ms > 0


async def test_wrong_password_is_a_401_result(tmp_path: Path, sushy: SushyEmulator) -> None:
    async with probing(tmp_path, sushy, password="not-the-password") as (probe, server):
        result = await probe.probe(server)
    assert (result.state, result.health) == ("Unknown", Health.UNKNOWN)
    assert result.detail.startswith("401 with basic auth")
    assert "not-the-password" not in repr(result)


@pytest.mark.slow
async def test_a_reset_shows_up_after_sushys_delay(tmp_path: Path, sushy: SushyEmulator) -> None:
    async with probing(tmp_path, sushy) as (probe, server):
        assert (await probe.probe(server)).state == "On"
        target = f"{sushy.url}/redfish/v1/Systems/{sushy.system_uuid}/Actions/ComputerSystem.Reset"
        headers = {"Authorization": aiohttp.encode_basic_auth(sushy.username, sushy.password)}
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.post(target, json={"ResetType": "ForceOff"}) as answer,
        ):
            assert answer.status == 204
        deadline = time.monotonic() + 20  # sushy applies it after 1-11 s
        while True:
            result = await probe.probe(server)
            if result.state == "Off":
                break
            assert result.state == "On", result.detail
            assert time.monotonic() < deadline, "the reset never showed up"
            await asyncio.sleep(0.25)
        assert (result.health, result.detail) == (
            Health.DOWN,
            "powered off; BMC has no SessionService: basic auth; plain HTTP, no TLS",
        )


async def test_status_exits_0_on_a_bmc_that_offers_no_power_readings(
    tmp_path: Path, sushy: SushyEmulator
) -> None:
    """sushy-emulator's chassis links Thermal but no Power resource: the rack-power
    probe judges the inlet it can read and names what the BMC does not offer, so
    ``status`` on this healthy BMC exits 0 (it once exited 1 on every run)."""
    import json

    bmc = {"address": sushy.address, "port": sushy.port, "scheme": "http",
           "credentials": "bmc-admin"}  # fmt: skip
    write_inventory(tmp_path, {"sushy-01": bmc})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pacs_tui", "status", "-i", str(tmp_path / "inventory.yaml"),
        "--probe", "power", "--probe", "rack-power", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, (out, err)
    (view,) = json.loads(out)
    rack = view["rack-power"]
    assert (rack["state"], rack["health"]) == ("ok", "ok")
    assert "power not offered by this BMC" in rack["detail"]
    assert rack["detail"].startswith("inlet 25.0 °C")  # its "Chassis Intake Temp"
    assert " W (" not in rack["detail"]  # no draw, and none made up
    assert rack["watts"] is None and rack["inlet_c"] == 25.0
    assert rack["auth"] == view["power"]["auth"] == "basic"  # no SessionService: both say so
    assert PASSWORD not in out.decode() + err.decode()
    # The table says so too: no latency standing in for a draw, and a note.
    table = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pacs_tui", "status", "-i", str(tmp_path / "inventory.yaml"),
        "--probe", "power", "--probe", "rack-power", stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    text = (await asyncio.wait_for(table.communicate(), 60))[0].decode()
    assert table.returncode == 0, text
    (row,) = [line for line in text.splitlines() if line.startswith("sushy-01")]
    assert " ok (no draw) " in row, row
    assert "rack-power note: power not offered by this BMC" in row, row
