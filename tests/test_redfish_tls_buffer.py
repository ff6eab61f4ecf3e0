"""The Redfish session's memory savings, over real TLS on loopback (issue 14).

Answers longer than the TLS read buffer arrive whole; of two connections
that two overlapping requests need, one is kept alive.

``bounded_http.TLS_READ_BUFFER`` (4 KiB) bounds how much one read of a TLS
connection takes: the ciphertext read from the socket and the plaintext one
``SSLObject.read`` returns. A BMC peer with a certificate from the
simulator's CA serves bodies of 100 KiB, sizes around the buffer and a TLS
record (16 KiB), sent whole or streamed in chunks; the real client reads
each through the shared session and gets every byte.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from pacs_tui.sim.pki import FleetPki
from pacs_tui_redfish_power.bounded_http import TLS_READ_BUFFER
from pacs_tui_redfish_power.client import BmcClient, bmc_credentials, open_http_session
from redfish_peers import free_port, net, write_inventory

SYSTEM = "/redfish/v1/Systems/1"
ROOT = {"@odata.id": "/redfish/v1/", "Systems": {"@odata.id": "/redfish/v1/Systems"}}
SYSTEMS = {"Members": [{"@odata.id": SYSTEM}], "Members@odata.count": 1}


def padded(size: int, tag: str) -> bytes:
    """A Redfish-like JSON object of exactly ``size`` bytes, its padding not repetitive."""
    head = {"@odata.id": f"/redfish/v1/Big/{tag}", "Id": tag, "PowerState": "On"}
    empty = len(json.dumps({**head, "Oem": ""}).encode())
    pad = "".join(chr(ord("a") + (i * 7 + i // 26) % 26) for i in range(size - empty))
    body = json.dumps({**head, "Oem": pad}).encode()
    assert len(body) == size
    return body


class BigPeer:
    """A TLS Redfish service (Basic auth accepted as sent) with resources of given sizes."""

    def __init__(self, sizes: dict[str, int]) -> None:
        self.bodies = {tag: padded(size, tag) for tag, size in sizes.items()}
        self.hold = asyncio.Event()  # /Slow answers once set
        self.ports: list[int] = []  # the client's port of every request, in order

    async def slow(self, request: web.Request) -> web.Response:
        self.ports.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        await self.hold.wait()
        return web.json_response({"Id": "slow"})

    async def fast(self, request: web.Request) -> web.Response:
        self.ports.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        return web.json_response({"Id": "fast"})

    async def root(self, request: web.Request) -> web.Response:
        return web.json_response(ROOT)

    async def systems(self, request: web.Request) -> web.Response:
        return web.json_response(SYSTEMS)

    async def system(self, request: web.Request) -> web.Response:
        return web.Response(body=self.bodies["system"], content_type="application/json")

    async def big(self, request: web.Request) -> web.StreamResponse:
        body = self.bodies[request.match_info["tag"]]
        if request.query.get("stream") != "1":
            return web.Response(body=body, content_type="application/json")
        # Chunked, in uneven pieces, as firmware that streams its JSON sends it.
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        step, offset = 1000, 0
        while offset < len(body):
            await response.write(body[offset : offset + step])
            offset += step
            step = step * 3 % 17000 + 1
            await asyncio.sleep(0)
        await response.write_eof()
        return response


@asynccontextmanager
async def tls_peer(tmp_path: Path, sizes: dict[str, int]) -> AsyncIterator[tuple[BigPeer, Path]]:
    """Serve ``BigPeer`` over HTTPS on a loopback address; an inventory for it."""
    peer = BigPeer(sizes)
    app = web.Application()
    app.router.add_get("/redfish/v1/", peer.root)
    app.router.add_get("/redfish/v1/Systems", peer.systems)
    app.router.add_get(SYSTEM, peer.system)
    app.router.add_get("/redfish/v1/Big/{tag}", peer.big)
    app.router.add_get("/redfish/v1/Slow", peer.slow)
    app.router.add_get("/redfish/v1/Fast", peer.fast)
    pki = FleetPki.create()
    ca_file = tmp_path / "fleet-ca.pem"
    pki.write_ca(ca_file)
    address = f"{net()}.1"
    port = free_port(address)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, address, port, ssl_context=pki.server_ssl_context(address))
    await site.start()
    write_inventory(
        tmp_path,
        {
            "big": {
                "address": address,
                "port": port,
                "ca_file": ca_file.name,
                "credentials": "bmc-admin",
                "auth": "basic",
                "timeout_s": 10.0,
            }
        },
    )
    try:
        yield peer, tmp_path / "inventory.yaml"
    finally:
        await runner.cleanup()


SIZES = {
    "system": 100 * 1024,  # the power probe's own GET, 25 times the buffer
    "k100": 100 * 1024,
    "under": TLS_READ_BUFFER - 1,
    "exact": TLS_READ_BUFFER,
    "over": TLS_READ_BUFFER + 1,
    "record": 16 * 1024 + 1,  # just over one TLS record
    "mib": 1024 * 1024,
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "chunked"])
async def test_bodies_longer_than_the_tls_read_buffer_arrive_whole(
    tmp_path: Path, stream: bool
) -> None:
    from pacs_tui.inventory import load_inventory

    assert TLS_READ_BUFFER == 4 * 1024
    async with tls_peer(tmp_path, SIZES) as (peer, inventory_file):
        inventory = load_inventory(inventory_file)
        bmc = inventory.server("big").bmc
        assert bmc is not None and bmc.scheme == "https"
        async with open_http_session() as http:
            assert asyncio.sslproto.SSLProtocol.max_size == TLS_READ_BUFFER
            client = BmcClient(http, bmc, bmc_credentials(inventory, bmc.credentials))
            reading = await client.power()  # verified TLS, the 100 KiB system resource
            assert reading.power_state == "On"
            suffix = "?stream=1" if stream else ""
            for tag in SIZES:
                if tag == "system":
                    continue
                status, body = await client.get(f"/redfish/v1/Big/{tag}{suffix}")
                assert status == 200
                assert json.dumps(body).encode() == peer.bodies[tag], tag
            # The connection really read through a buffer of that size.
            pooled = getattr(http.connector, "_conns", {})
            tls = [
                getattr(p.transport, "_ssl_protocol", None) for c in pooled.values() for p, _ in c
            ]
            assert tls and all(len(t._ssl_buffer) == TLS_READ_BUFFER for t in tls), tls
            await client.close()


async def test_two_requests_at_once_still_run_and_one_connection_is_kept(tmp_path: Path) -> None:
    from pacs_tui.inventory import load_inventory

    async with tls_peer(tmp_path, {"system": 100}) as (peer, inventory_file):
        inventory = load_inventory(inventory_file)
        bmc = inventory.server("big").bmc
        assert bmc is not None
        async with open_http_session() as http:
            client = BmcClient(http, bmc, bmc_credentials(inventory, bmc.credentials))
            await client.power()  # discovery, and the first connection
            slow = asyncio.create_task(client.get("/redfish/v1/Slow"))
            while len(peer.ports) < 1:
                await asyncio.sleep(0.01)
            # The slow one holds the kept connection: this one gets a second, at once.
            assert await client.get("/redfish/v1/Fast") == (200, {"Id": "fast"})
            assert not slow.done()
            peer.hold.set()
            assert await slow == (200, {"Id": "slow"})
            assert len(set(peer.ports)) == 2
            pooled = getattr(http.connector, "_conns", {})
            assert [len(c) for c in pooled.values()] == [1]  # one of the two kept alive
            for _ in range(3):  # and used: no new connection, no handshake
                assert await client.get("/redfish/v1/Fast") == (200, {"Id": "fast"})
            assert len(set(peer.ports)) == 2
            assert len(set(peer.ports[2:])) == 1
            await client.close()
