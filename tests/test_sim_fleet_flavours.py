"""BMC flavours in the generated fleet: the mix, blade enclosures, faults file, CLI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from pacs_tui.cli import EXIT_USAGE, main
from pacs_tui.inventory import load_inventory
from pacs_tui.sim.control import ControlApi
from pacs_tui.sim.datacenter import SimOptions, SimulatedDataCenter
from pacs_tui.sim.faults import FaultFileError, load_fault_plan
from pacs_tui.sim.fleet import DEFAULT_MIX, build_fleet
from pacs_tui.sim.redfish_flavour import BmcFlavour, parse_mix
from sim_process import random_octet

F = BmcFlavour
BLADES_AND_GENERIC = ((F.BLADE_ENCLOSURE, 3.0), (F.GENERIC, 1.0), (F.LEGACY_TLS, 0.5))


def test_the_default_mix_is_the_four_plain_flavours() -> None:
    fleet = build_fleet(300, seed=7)
    assert {s.flavour for s in fleet.servers} == {f for f, _ in DEFAULT_MIX}
    assert all(s.bmc_system is None and s.bmc_host == s.address for s in fleet.servers)
    assert fleet.enclosures() == []


def test_blades_share_an_enclosure_of_up_to_four_per_rack() -> None:
    fleet = build_fleet(60, seed=3, bmc_mix=BLADES_AND_GENERIC)
    enclosures = fleet.enclosures()
    assert enclosures and max(len(e) for e in enclosures) == 4
    for names in enclosures:
        blades = [fleet.server(n) for n in names]
        assert [b.bmc_system for b in blades] == [f"Blade{i}" for i in range(1, len(names) + 1)]
        assert {b.bmc_host for b in blades} == {blades[0].address}
        assert len({(b.site, b.rack) for b in blades}) == 1
        assert len({b.address for b in blades}) == len(blades)  # SSH/DICOM stay their own
    plain = [s for s in fleet.servers if s.flavour is not F.BLADE_ENCLOSURE]
    assert plain and all(s.bmc_system is None for s in plain)


def test_a_bmc_mix_is_parsed_and_checked() -> None:
    assert parse_mix("generic=2, blade-enclosure=0.5") == (
        (F.GENERIC, 2.0),
        (F.BLADE_ENCLOSURE, 0.5),
    )
    for text, needle in [
        ("wobbly=1", "unknown BMC flavour 'wobbly'"),
        ("generic", "FLAVOUR=WEIGHT"),
        ("generic=0", "weight > 0"),
        ("generic=x", "weight > 0"),
        ("generic=1,generic=2", "given twice"),
    ]:
        with pytest.raises(ValueError, match=needle):
            parse_mix(text)


def test_cli_refuses_a_bad_mix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--bmc-mix", "generic=1,wobbly=2"]) == EXIT_USAGE
    assert "--bmc-mix: unknown BMC flavour 'wobbly'" in capsys.readouterr().err


def test_faults_file_plants_a_flavour_and_names_the_line_of_a_bad_one(tmp_path: Path) -> None:
    good = tmp_path / "faults.yaml"
    good.write_text("faults:\n  - servers: 'arch-*'\n    bmc_flavour: slow-login\n")
    assert load_fault_plan(good)[0].changes == {"bmc_flavour": "slow-login"}
    for flavour in ("wobbly", "blade-enclosure"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            f"faults:\n  - servers: x\n    bmc_503: true\n  - servers: y\n    bmc_flavour: {flavour}\n"
        )
        with pytest.raises(FaultFileError) as caught:
            load_fault_plan(bad)
        assert "bad.yaml:4: faults[1]: fault 'bmc_flavour' takes one of" in str(caught.value)
        assert f"got '{flavour}'" in str(caught.value)


@pytest.fixture
async def blade_center(tmp_path: Path) -> AsyncIterator[tuple[SimulatedDataCenter, str]]:
    options = SimOptions(
        servers=12,
        address_octet=random_octet(),
        time_scale=0.01,
        tls=False,
        bmc_mix=BLADES_AND_GENERIC,
        seed=5,
    )
    center = SimulatedDataCenter(options)
    center.write_client_files(tmp_path)
    await center.start()
    api = ControlApi(center)
    url = await api.start()
    try:
        yield center, url
    finally:
        await api.stop()
        await center.stop()


async def test_a_blade_is_reached_through_its_enclosure_bmc(
    blade_center: tuple[SimulatedDataCenter, str], tmp_path: Path
) -> None:
    center, control = blade_center
    inventory = load_inventory(tmp_path / "inventory.yaml")
    enclosure = next(e for e in center.fleet.enclosures() if len(e) > 1)
    second = inventory.server(enclosure[1])
    first = inventory.server(enclosure[0])
    assert second.bmc is not None and first.bmc is not None
    assert second.bmc.address == first.bmc.address == center.fleet.server(enclosure[0]).address
    assert (first.bmc.system, second.bmc.system) == ("Blade1", "Blade2")
    assert second.ssh is not None and second.ssh.host == center.fleet.server(enclosure[1]).address
    legacy = [s for s in center.fleet.servers if s.flavour is F.LEGACY_TLS]
    assert legacy  # seed 5 draws some
    for spec in legacy:
        bmc = inventory.server(spec.name).bmc
        assert bmc is not None and bmc.tls_legacy

    opts = center.options
    auth = {"Authorization": aiohttp.encode_basic_auth(opts.bmc_username, opts.bmc_password)}
    base = f"http://{second.bmc.address}:{opts.bmc_port}"
    async with aiohttp.ClientSession(headers=auth) as client:
        async with client.get(f"{base}/redfish/v1/Systems/Blade2") as resp:
            assert (await resp.json())["HostName"] == enclosure[1]
        target = f"{base}/redfish/v1/Systems/Blade2/Actions/ComputerSystem.Reset"
        async with client.post(target, json={"ResetType": "ForceOff"}) as resp:
            assert resp.status == 204
        async with client.get(f"{control}/hosts/{enclosure[1]}/bmc") as resp:
            seen = await resp.json()
        assert seen["flavour"] == "blade-enclosure" and seen["system"] == "Blade2"
        assert seen["enclosure"] == enclosure
        assert seen["resets"] == ["ForceOff"]
        assert {"method": "POST", "path": target.removeprefix(base), "count": 1} in seen["requests"]
        async with client.get(f"{control}/hosts/{enclosure[0]}/bmc") as resp:
            assert (await resp.json())["resets"] == []
        # A blade cannot change its enclosure BMC's flavour alone.
        async with client.post(
            f"{control}/hosts/{enclosure[1]}/faults", json={"bmc_flavour": "slow-login"}
        ) as resp:
            assert resp.status == 400
            assert "is a blade" in (await resp.json())["error"]
    for _ in range(100):
        if str(center.host(enclosure[1]).power_state) == "Off":
            break
        await asyncio.sleep(0.02)
    assert str(center.host(enclosure[1]).power_state) == "Off"
    assert str(center.host(enclosure[0]).power_state) == "On"
