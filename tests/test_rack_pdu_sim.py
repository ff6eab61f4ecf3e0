"""The rack-PDU reader against the simulator's rack PDUs, with the draw of real simulated hosts.

Feed A (``feed=1``) supplies every server's PSU 1: an unplugged PSU 2 moves
its share here, and other load on a branch pushes the circuit over its
budget (80 % of 16 A), which the reader names.
"""

from __future__ import annotations

from pathlib import Path

from pacs_tui.sim.rack_pdu import RackPduService, SimulatedRackPdu
from pacs_tui.sim.redfish_power import draw_watts, supply_watts
from pacs_tui_redfish_power.client import BmcClient, bmc_credentials, open_http_session
from pacs_tui_redfish_power.rack_pdu import RackPduReading, read_rack_pdus
from redfish_peers import PASSWORD, USER, free_port, make_host, net, write_inventory


async def read(tmp: Path, address: str, port: int) -> RackPduReading:
    """The PDU at ``address:port`` read as the inventory's ``pdu`` (HTTP, Basic auth)."""
    inventory = write_inventory(
        tmp,
        {
            "pdu": {
                "address": address,
                "port": port,
                "scheme": "http",
                "credentials": "bmc-admin",
            }
        },
    )
    endpoint = inventory.server("pdu").bmc
    assert endpoint is not None
    async with open_http_session() as http:
        client = BmcClient(http, endpoint, bmc_credentials(inventory, "bmc-admin"))
        try:
            (reading,) = await read_rack_pdus(client.get)
        finally:
            await client.close()
    return reading


async def test_the_rack_draw_per_outlet_branch_and_total(tmp_path: Path) -> None:
    prefix = net()
    hosts = [make_host(f"s{i}", f"{prefix}.{i + 1}") for i in range(10)]
    address = f"{prefix}.250"
    pdu = SimulatedRackPdu("rack-07-A", feed=1, hosts=hosts)
    service = RackPduService(pdu, address, free_port(address), USER, PASSWORD)
    await service.start()
    try:
        reading = await read(tmp_path, address, service.port)
        share = [supply_watts(h, 1) for h in hosts]
        assert [o.watts for o in reading.outlets] == share
        assert [o.member for o in reading.outlets] == [*(f"A{n}" for n in range(1, 9)), "B1", "B2"]
        assert [b.member for b in reading.branches] == ["A", "B"]
        assert reading.branches[0].watts == round(sum(share[:8]), 1)
        assert reading.watts == round(sum(share), 1)
        assert reading.faults == []

        # PSU 2 of s0 unplugged (the second PDU's cable): feed A carries its whole draw.
        hosts[0].faults.update({"psu_unplugged": 2})
        moved = await read(tmp_path, address, service.port)
        assert moved.outlets[0].watts == draw_watts(hosts[0]) == 2 * share[0]

        # Another rack's gear on branch A: the circuit is over its budget.
        pdu.extra_watts = 2400.0
        over = await read(tmp_path, address, service.port)
        (fault,) = over.faults
        amps = over.branches[0].amps
        assert amps is not None
        load = amps / 16
        assert load > 0.8 and fault == f"Branch A at {load:.0%} of its 16 A rating"
    finally:
        await service.stop()
