"""The simulator's support for the rehearsal's plants, through its control API.

A slower storage tier (``dicom_find_delay_s``), two boxes swapped between
slots (``/swap-hardware``) and a replica lacking a day (``/missing-days``),
each observed the way a client sees it: C-FIND latency and counts over
DICOM, serial numbers and MACs over Redfish.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from pacs_tui.dicom.client import c_find_studies
from pacs_tui.sim.control import ControlApi
from pacs_tui.sim.datacenter import SimOptions, SimulatedDataCenter
from sim_process import random_octet

LOOKUP = {"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.77.0.20000101.1.1"}


@pytest.fixture
async def center() -> AsyncIterator[tuple[SimulatedDataCenter, str]]:
    options = SimOptions(servers=12, address_octet=random_octet(), time_scale=0.01, tls=False)
    dc = SimulatedDataCenter(options)
    await dc.start()
    api = ControlApi(dc)
    url = await api.start()
    try:
        yield dc, url
    finally:
        await api.stop()
        await dc.stop()


async def control(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url + path, json=body) as answer,
    ):
        return answer.status, await answer.json()


async def find(dc: SimulatedDataCenter, name: str, query: dict[str, str]) -> Any:
    spec = dc.fleet.server(name)
    assert spec.ae_title is not None
    outcome = await c_find_studies(
        spec.address, dc.options.dicom_port, called_ae=spec.ae_title, query=query
    )
    assert outcome.state == "ok", outcome.detail
    return outcome


async def test_find_delay_fault_slows_each_c_find(
    center: tuple[SimulatedDataCenter, str],
) -> None:
    dc, url = center
    quick = await find(dc, "arch-001", LOOKUP)
    status, body = await control(url, "POST", "/hosts/arch-001/faults", {"dicom_find_delay_s": 0.3})
    assert (status, body["faults"]) == (200, {"dicom_find_delay_s": 0.3})
    slow = await find(dc, "arch-001", LOOKUP)
    other = await find(dc, "arch-002" if "arch-002" in dc.hosts else "img-001", LOOKUP)
    assert quick.latency_ms < 250 <= 300 <= slow.latency_ms
    assert other.latency_ms < 250  # only the planted server's tier is slower
    status, body = await control(url, "POST", "/hosts/arch-001/faults", {"dicom_find_delay_s": -1})
    assert status == 400 and "dicom_find_delay_s" in body["error"]
    await control(url, "DELETE", "/hosts/arch-001/faults")
    assert (await find(dc, "arch-001", LOOKUP)).latency_ms < 250


async def system_facts(dc: SimulatedDataCenter, name: str) -> tuple[str, list[str]]:
    """SerialNumber and MAC addresses as the server's BMC reports them over Redfish."""
    spec = dc.fleet.server(name)
    base = f"http://{spec.address}:{dc.options.bmc_port}"
    auth = aiohttp.encode_basic_auth(dc.options.bmc_username, dc.options.bmc_password)
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as http:

        async def get(path: str) -> Any:
            async with http.get(base + path) as answer:
                assert answer.status == 200, path
                return await answer.json()

        systems = await get("/redfish/v1/Systems")
        system = await get(systems["Members"][0]["@odata.id"])
        nics = await get(system["EthernetInterfaces"]["@odata.id"])
        macs = [(await get(m["@odata.id"]))["MACAddress"] for m in nics["Members"]]
    return system["SerialNumber"], macs


async def test_swap_hardware_changes_what_the_bmcs_report(
    center: tuple[SimulatedDataCenter, str],
) -> None:
    dc, url = center
    web1, web2 = await system_facts(dc, "web-001"), await system_facts(dc, "web-002")
    assert web1 != web2
    status, _ = await control(url, "POST", "/swap-hardware", {"a": "web-001", "b": "web-002"})
    assert status == 200
    assert await system_facts(dc, "web-001") == web2
    assert await system_facts(dc, "web-002") == web1
    status, body = await control(url, "POST", "/swap-hardware", {"a": "web-001", "b": "nope"})
    assert status == 404 and "nope" in body["error"]


async def test_replica_lacking_a_day(center: tuple[SimulatedDataCenter, str]) -> None:
    dc, url = center
    status, pairs = await control(url, "GET", "/replicas")
    assert status == 200 and pairs == [{"primary": "arch-001", "replica": "bkp-arch-01"}]
    day = dc.options.today - timedelta(days=2)
    one_day = {"StudyDate": day.strftime("%Y%m%d"), "ModalitiesInStudy": "NM"}
    before = await find(dc, "bkp-arch-01", one_day)
    assert before.count == (await find(dc, "arch-001", one_day)).count > 0
    status, body = await control(
        url, "POST", "/hosts/bkp-arch-01/missing-days", {"days": [day.isoformat()]}
    )
    assert status == 200 and body["studies"] == dc.studies["arch-001"].count(day, day)
    assert (await find(dc, "bkp-arch-01", one_day)).count == 0
    assert (await find(dc, "arch-001", one_day)).count == before.count  # the primary is whole
    status, body = await control(
        url, "POST", "/hosts/web-001/missing-days", {"days": ["2024-01-01"]}
    )
    assert status == 400 and "not an archive" in body["error"]
