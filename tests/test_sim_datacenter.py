"""The simulated data center in-process: coupling of power, SSH, DICOM and the control API."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import asyncssh
import pytest

from pacs_tui.dicom.client import c_echo
from pacs_tui.inventory import load_inventory
from pacs_tui.sim.control import ControlApi
from pacs_tui.sim.datacenter import SimOptions, SimulatedDataCenter
from pacs_tui.sim.faults import FaultFileError, load_fault_plan
from sim_process import random_octet


async def eventually(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait until ``check()`` (sync or async) is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout} s")
        await asyncio.sleep(0.02)


@pytest.fixture
async def center(tmp_path: Path) -> AsyncIterator[tuple[SimulatedDataCenter, str, Path]]:
    options = SimOptions(servers=12, address_octet=random_octet(), time_scale=0.01)
    dc = SimulatedDataCenter(options)
    dc.write_client_files(tmp_path)
    await dc.start()
    api = ControlApi(dc)
    url = await api.start()
    try:
        yield dc, url, tmp_path
    finally:
        await api.stop()
        await dc.stop()


async def port_open(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    return True


def dicom_server(dc: SimulatedDataCenter) -> str:
    return next(s.name for s in dc.fleet.servers if s.role == "archive")


async def test_written_inventory_is_valid_and_matches_the_fleet(center) -> None:
    dc, _, out = center
    inventory = load_inventory(out / "inventory.yaml")
    assert inventory.names() == [s.name for s in dc.fleet.servers]
    archive = inventory.server(dicom_server(dc))
    assert archive.dicom is not None and archive.dicom.port == dc.options.dicom_port
    assert archive.bmc is not None and archive.bmc.ca_file == out / "ca.pem"
    assert set(archive.depends_on) == {h.name for h in dc.hosts[archive.name].depends_on}


async def test_power_off_closes_ssh_and_dicom_but_not_the_bmc(center) -> None:
    dc, _, _ = center
    host = dc.hosts[dicom_server(dc)]
    opts = dc.options
    assert await port_open(host.address, opts.dicom_port)
    host.reset("ForceOff")

    async def ssh_closed() -> bool:
        return not await port_open(host.address, opts.ssh_port)

    await eventually(ssh_closed)
    assert not await port_open(host.address, opts.dicom_port)
    assert await port_open(host.address, opts.bmc_port)
    host.reset("On")
    await eventually(lambda: port_open(host.address, opts.dicom_port))
    assert (
        await c_echo(host.address, opts.dicom_port, called_ae=host.name.upper().replace("-", ""))
    ).state == "ok"


async def test_a_service_whose_dependency_is_down_is_not_healthy(center) -> None:
    dc, _, _ = center
    archive = dc.hosts[dicom_server(dc)]
    assert archive.unit_state("pacs") == "active"
    archive.depends_on[0].reset("ForceOff")
    await eventually(lambda: archive.unit_state("pacs") == "failed")
    archive.depends_on[0].reset("On")
    await eventually(lambda: archive.unit_state("pacs") == "active")


async def test_control_api_plants_and_clears_faults(center) -> None:
    dc, url, _ = center
    name = dicom_server(dc)
    host = dc.hosts[name]
    bmc_url = f"https://{host.address}:{dc.options.bmc_port}/redfish/v1/Systems"
    auth = {
        "Authorization": aiohttp.encode_basic_auth(dc.options.bmc_username, dc.options.bmc_password)
    }
    client_ctx = ssl.create_default_context(cadata=dc.pki.ca_pem().decode())
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/hosts/{name}") as reply:
            assert (await reply.json())["power_state"] == "On"
        async with http.post(f"{url}/hosts/{name}/faults", json={"bmc_503": True}) as reply:
            assert reply.status == 200 and (await reply.json())["faults"] == {"bmc_503": True}
        async with http.get(bmc_url, headers=auth, ssl=client_ctx) as reply:
            assert reply.status == 503
        async with http.post(f"{url}/hosts/{name}/faults", json={"bmc_unreachable": True}) as reply:
            assert reply.status == 200
        assert not await port_open(host.address, dc.options.bmc_port)
        async with http.delete(f"{url}/hosts/{name}/faults") as reply:
            assert reply.status == 200
        assert await port_open(host.address, dc.options.bmc_port)
        async with http.get(bmc_url, headers=auth, ssl=client_ctx) as reply:
            assert reply.status == 200
        async with http.post(f"{url}/hosts/{name}/faults", json={"colour": "red"}) as reply:
            assert reply.status == 400 and "unknown fault 'colour'" in (await reply.json())["error"]
        async with http.post(f"{url}/hosts/nope/faults", json={}) as reply:
            assert reply.status == 404
        async with http.post(f"{url}/hosts/{name}/faults", data=b"{not json") as reply:
            assert reply.status == 400
        async with http.post(f"{url}/hosts/{name}/power", json={"reset_type": "ForceOff"}) as reply:
            assert reply.status == 202
        await eventually(lambda: host.power_state == "Off")
        async with http.post(f"{url}/hosts/{name}/power", json={"reset_type": "Explode"}) as reply:
            assert reply.status == 400


async def test_host_key_fault_through_the_api_breaks_strict_ssh(center) -> None:
    dc, url, out = center
    name = dicom_server(dc)
    host = dc.hosts[name]
    connect = dict(
        port=dc.options.ssh_port,
        username=dc.options.ssh_user,
        client_keys=[str(out / "id_ed25519")],
        known_hosts=str(out / "known_hosts"),
    )
    async with asyncssh.connect(host.address, **connect) as conn:
        assert (await conn.run("systemctl is-active pacs")).stdout.strip() == "active"
    async with aiohttp.ClientSession() as http:
        await http.post(f"{url}/hosts/{name}/faults", json={"ssh_host_key_changed": True})
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        async with asyncssh.connect(host.address, **connect):
            pass


async def test_dicom_never_ready_keeps_the_dicom_port_closed(center) -> None:
    dc, _, _ = center
    host = dc.hosts[dicom_server(dc)]
    await dc.set_faults(host.name, {"dicom_never_ready": True})
    assert not await port_open(host.address, dc.options.dicom_port)
    await dc.clear_faults(host.name)
    assert await port_open(host.address, dc.options.dicom_port)


def test_fault_plan_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "faults:\n  - servers: 'arch-*'\n    bmc_delay_s: 2\n    dicom_reject: calling-ae\n"
    )
    plan = load_fault_plan(good)
    assert plan[0].servers == "arch-*" and plan[0].changes == {
        "bmc_delay_s": 2,
        "dicom_reject": "calling-ae",
    }
    for text, needle in [
        ("faults:\n  - bmc_503: true\n", ":2: faults[0].servers"),
        ("faults:\n  - servers: x\n    nope: 1\n", "unknown fault 'nope'"),
        ("fault: []\n", ":1: fault: unknown key"),
        ("faults: [\n", "not valid YAML"),
        ("faults:\n  - servers: x\n    bmc_delay_s: -1\n", "number >= 0"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(FaultFileError) as caught:
            load_fault_plan(bad)
        assert needle in str(caught.value), (text, str(caught.value))
