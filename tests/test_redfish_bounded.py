"""Hostile answers are bounded: size, depth, never-ending bodies, huge headers (issue 9, item 8).

A small HTTP peer on loopback answers the ComputerSystem GET in each hostile
way; the real power probe reads it through the real client.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from pacs_tui.plugin_api import Health, ProbeContext, ProbeResult
from pacs_tui_redfish_power.client import MAX_BODY
from pacs_tui_redfish_power.probe import RedfishPowerProbe
from redfish_peers import free_port, net, write_inventory

SYSTEM = "/redfish/v1/Systems/1"
ROOT = {
    "@odata.id": "/redfish/v1/",
    "Systems": {"@odata.id": "/redfish/v1/Systems"},
}
SYSTEMS = {"Members": [{"@odata.id": SYSTEM}], "Members@odata.count": 1}
ON = {"@odata.id": SYSTEM, "Id": "1", "PowerState": "On", "Status": {"Health": "OK"}}


class HostilePeer:
    """A Redfish service with basic auth whose system resource misbehaves on demand."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.sent_bytes = 0
        self.logins = 0

    async def root(self, request: web.Request) -> web.Response:
        if self.mode == "redirect-away":
            sessions = {"@odata.id": "/redfish/v1/SessionService/Sessions"}
            return web.json_response({**ROOT, "Links": {"Sessions": sessions}})
        return web.json_response(ROOT)

    async def login(self, request: web.Request) -> web.Response:
        self.logins += 1
        # Elsewhere: another host (never contacted; the name does not resolve here).
        location = "https://bmc.elsewhere.invalid/redfish/v1/SessionService/Sessions"
        return web.Response(status=307, headers={"Location": location})

    async def stream(
        self,
        request: web.Request,
        length: int | None,
        chunks: int,
        size: int,
        *,
        prefix: bytes = b"",
        pause_s: float = 0.0,
    ) -> web.StreamResponse:
        """Send ``chunks`` blanks of ``size`` bytes until done or the client hangs up."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = length
        await response.prepare(request)
        await response.write(prefix)
        for _ in range(chunks):
            try:
                await response.write(b" " * size)
            except (ConnectionError, RuntimeError):
                break
            self.sent_bytes += size
            if pause_s:
                await asyncio.sleep(pause_s)
        return response

    async def systems(self, request: web.Request) -> web.Response:
        return web.json_response(SYSTEMS)

    async def system(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "ok":
            return web.json_response(ON)
        if self.mode == "endless":
            # Chunked, no length; bounded on our side too (256 MiB) if nobody hangs up.
            return await self.stream(
                request, None, 4096, 65536, prefix=b'{"PowerState": "On", "P": "'
            )
        if self.mode == "trickle":
            return await self.stream(request, None, 600, 1, pause_s=0.05)
        if self.mode == "huge":
            # A declared 100 MB JSON body, streamed as a BMC would send it.
            return await self.stream(request, 100 * 1024 * 1024, 1600, 65536)
        if self.mode == "deep":
            body = b'{"PowerState": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
            return web.Response(body=body, content_type="application/json")
        if self.mode == "header":
            return web.json_response(ON, headers={"X-Vendor-Trace": "a" * 20_000})
        raise AssertionError(self.mode)


@asynccontextmanager
async def hostile(tmp_path: Path) -> AsyncIterator[tuple[HostilePeer, RedfishPowerProbe, object]]:
    peer = HostilePeer()
    app = web.Application()
    app.router.add_get("/redfish/v1/", peer.root)
    app.router.add_get("/redfish/v1/Systems", peer.systems)
    app.router.add_get(SYSTEM, peer.system)
    app.router.add_post("/redfish/v1/SessionService/Sessions", peer.login)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    address = f"{net()}.1"
    port = free_port(address)
    site = web.TCPSite(runner, address, port)
    await site.start()
    inventory = write_inventory(
        tmp_path,
        {
            "hostile": {
                "address": address,
                "port": port,
                "scheme": "http",
                "credentials": "bmc-admin",
                "timeout_s": 1.0,
            }
        },
    )
    probe = RedfishPowerProbe()
    await probe.open(ProbeContext(inventory, {}))
    try:
        yield peer, probe, inventory.server("hostile")
    finally:
        await probe.close()
        await runner.cleanup()


async def read(probe: RedfishPowerProbe, server: object) -> ProbeResult:
    return await probe.probe(server)  # type: ignore[arg-type]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def test_a_body_that_never_ends_is_cut_at_the_cap(tmp_path: Path) -> None:
    async with hostile(tmp_path) as (peer, probe, server):
        assert (await read(probe, server)).state == "On"
        peer.mode = "endless"
        before = rss_mib()
        started = time.monotonic()
        result = await read(probe, server)
        assert time.monotonic() - started < 5
        assert (result.state, result.health) == ("Unknown", Health.UNKNOWN)
        assert "answer too large" in result.detail
        assert rss_mib() - before < 64  # was 3.1 GB in 5 s before the cap
        peer.mode = "ok"
        assert (await read(probe, server)).state == "On"  # the client recovers


async def test_a_trickling_body_is_bounded_by_the_timeout(tmp_path: Path) -> None:
    async with hostile(tmp_path) as (peer, probe, server):
        assert (await read(probe, server)).state == "On"
        peer.mode = "trickle"
        started = time.monotonic()
        result = await read(probe, server)
        assert time.monotonic() - started < 3
        assert (result.state, result.health) == ("Unknown", Health.DOWN)
        assert "no answer from BMC" in result.detail and "1 s" in result.detail


async def test_a_100_mb_answer_is_refused_by_its_length(tmp_path: Path) -> None:
    async with hostile(tmp_path) as (peer, probe, server):
        peer.mode = "huge"
        before = rss_mib()
        result = await read(probe, server)
        assert "answer too large" in result.detail and f"{MAX_BODY // 2**20} MiB" in result.detail
        assert rss_mib() - before < 64  # was 384 MB accepted before the cap
        assert peer.sent_bytes < 50 * 1024 * 1024  # refused by its length, not read


async def test_json_nested_200000_deep_is_malformed_not_a_traceback(
    tmp_path: Path, capsys: object
) -> None:
    async with hostile(tmp_path) as (peer, probe, server):
        peer.mode = "deep"
        result = await read(probe, server)
        assert result.health is Health.UNKNOWN
        assert "malformed JSON from BMC: nested too deep" in result.detail


async def test_an_oversized_header_is_named(tmp_path: Path) -> None:
    async with hostile(tmp_path) as (peer, probe, server):
        peer.mode = "header"
        result = await read(probe, server)
        assert result.health is Health.UNKNOWN
        assert "header too large" in result.detail


async def test_a_login_redirected_to_another_host_is_not_followed(tmp_path: Path) -> None:
    async with hostile(tmp_path) as (peer, probe, server):
        peer.mode = "redirect-away"
        result = await read(probe, server)
        assert (result.state, result.health) == ("Unknown", Health.UNKNOWN)
        assert "redirected to another host" in result.detail
        assert "credentials are only sent to the inventory's address" in result.detail
        assert peer.logins == 1
