"""The rack-PDU reader against the DMTF's PDU mockup (``public-pdu``), served over HTTPS.

Read through the power probe's ``BmcClient`` (session login, bounded
answers), exactly as a PDU in the inventory would be: the total from
``Metrics.PowerWatts``, every mains input, branch circuit and outlet with its
breaker state, current and watts. Expected values come from the mockup's JSON.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pacs_tui_redfish_power.client import BmcClient, bmc_credentials, open_http_session
from pacs_tui_redfish_power.rack_pdu import RackPduReading, read_rack_pdus
from redfish_mockups import mockup_as_server, mockup_folder, mockup_payload

PDU = "/redfish/v1/PowerEquipment/RackPDUs/1"


payload = mockup_payload


def members(folder: Path, path: str) -> list[dict[str, Any]]:
    """The mockup's JSON of every member of the collection at ``path``."""
    return [payload(folder, m["@odata.id"]) for m in payload(folder, path)["Members"]]


@asynccontextmanager
async def pdu_client(tmp: Path, folder: Path) -> AsyncIterator[BmcClient]:
    """A ``BmcClient`` logged in to ``folder`` served on HTTPS; logged out afterwards."""
    async with mockup_as_server(tmp, folder, "pdu-1") as (mockup, inventory):
        endpoint = inventory.server("pdu-1").bmc
        assert endpoint is not None
        async with open_http_session() as http:
            client = BmcClient(http, endpoint, bmc_credentials(inventory, "bmc-admin"))
            try:
                yield client
            finally:
                await client.close()
        assert mockup.sessions == {}


async def read(tmp: Path, folder: Path) -> RackPduReading:
    async with pdu_client(tmp, folder) as client:
        (pdu,) = await read_rack_pdus(client.get)
    return pdu


async def test_the_dmtf_rack_pdu_is_read_exactly(tmp_path: Path) -> None:
    folder = mockup_folder("public-pdu")
    pdu = await read(tmp_path, folder)
    body = payload(folder, PDU)
    metrics = payload(folder, f"{PDU}/Metrics")
    assert (pdu.path, pdu.name, pdu.model, pdu.health) == (PDU, "RackPDU1", "ZAP4000", "OK")
    assert pdu.name == body["Name"] and pdu.watts == metrics["PowerWatts"]["Reading"] == 6438
    (mains,) = pdu.mains
    ac1 = payload(folder, f"{PDU}/Mains/AC1")
    assert (mains.member, mains.kind, mains.breaker, mains.rated_amps) == (
        "AC1",
        "Mains",
        "Normal",
        40,
    )
    assert ac1["RatedCurrentAmps"] == 40
    # Three-phase mains report per line only (PolyPhase*): no single figure is invented.
    assert (mains.amps, mains.watts) == (None, None)
    branches = {b["Id"]: b for b in members(folder, f"{PDU}/Branches")}
    assert [b.member for b in pdu.branches] == ["A", "B", "C"]
    for branch in pdu.branches:
        source = branches[branch.member]
        assert branch.breaker == source["BreakerState"] == "Normal"
        assert branch.rated_amps == source["RatedCurrentAmps"] == 16
        assert branch.amps == source["CurrentAmps"]["Reading"]
        assert branch.watts == source["PowerWatts"]["Reading"]
    assert [(b.amps, b.watts) for b in pdu.branches] == [
        (5.19, 937.4),
        (5.95, 977.8),
        (4.13, 816.5),
    ]
    outlets = {o["Id"]: o for o in members(folder, f"{PDU}/Outlets")}
    assert [o.member for o in pdu.outlets] == list(outlets)  # A1..A5, B1..B3, C1..C3
    for outlet in pdu.outlets:
        source = outlets[outlet.member]
        assert outlet.watts == source.get("PowerWatts", {}).get("Reading")
        assert outlet.amps == source.get("CurrentAmps", {}).get("Reading")
        assert outlet.power_state == source.get("PowerState")
        assert outlet.branch == source["Links"]["BranchCircuit"]["@odata.id"].rsplit("/", 1)[1]
    by_id = {o.member: o for o in pdu.outlets}
    assert (by_id["A1"].watts, by_id["A1"].amps, by_id["A1"].branch) == (197.4, 1.68, "A")
    # A4 is switched on but reports no metering; A5 reports nothing: unknown, never 0 W.
    assert (by_id["A4"].power_state, by_id["A4"].watts) == ("On", None)
    assert (by_id["A5"].power_state, by_id["A5"].state, by_id["A5"].watts) == (None, None, None)
    assert pdu.faults == [] and pdu.why == []


async def test_a_tripped_breaker_and_an_overloaded_branch_are_named(tmp_path: Path) -> None:
    folder = tmp_path / "mockup"
    shutil.copytree(mockup_folder("public-pdu"), folder)
    branches = folder / "PowerEquipment" / "RackPDUs" / "1" / "Branches"
    b = json.loads((branches / "B" / "index.json").read_text())
    b["BreakerState"] = "Tripped"
    (branches / "B" / "index.json").write_text(json.dumps(b))
    c = json.loads((branches / "C" / "index.json").read_text())
    c["CurrentAmps"]["Reading"] = 14.1  # 88 % of 16 A
    (branches / "C" / "index.json").write_text(json.dumps(c))
    (tmp_path / "run").mkdir()
    pdu = await read(tmp_path / "run", folder)
    assert pdu.faults == ["Branch B breaker Tripped", "Branch C at 88% of its 16 A rating"]
